-- sql/10_pricing.sql: the known LMSR values of DESIGN.md, the rounding direction, spend budgets.
begin;
\ir helpers/setup.psql
select plan(20);

select is(round(bj.lmsr_cost('{10,0}', 100) - bj.lmsr_cost('{0,0}', 100), 9), 5.124947951,
          'buying 10 YES at b=100 from (0,0) costs 100·ln((e^0.1+1)/2)');
select is(round((bj.lmsr_prices('{10,0}', 100))[1], 9), 0.524979187, 'after which P(YES) = 0.524979187');
select is(round(bj.lmsr_cost('{0,0}', 100), 6), 69.314718, 'the worst-case subsidy is 100·ln 2');
select is(round(bj.lmsr_cost('{100,0,0}', 50) - bj.lmsr_cost('{0,0,0}', 50), 9), 57.046623878,
          'three outcomes, b=50: buying 100 of one costs 57.046623877…');
select is((bj.display_prices(bj.lmsr_prices('{0,0}', 100)))[1], 0.5::numeric, 'a fresh binary market is at 0.5');
select ok((select bool_and(p > 0 and p < 1) from unnest(bj.display_prices(bj.lmsr_prices('{100000,0,0}', 10))) p),
          'displayed prices stay strictly between 0 and 1, even at extremes');
select is(round((select sum(p) from unnest(bj.lmsr_prices('{3,-7,11,0}', 25)) p), 20), 1::numeric,
          'prices sum to one');

-- rounding favours the house: costs up, proceeds down, fees up
select is((bj.price_trade('lmsr', '{0,0}', 100, 0.0167, 1, 'buy', 10, null)).amount, 5.124948::numeric,
          'a buy''s amount rounds up');
select is((bj.price_trade('lmsr', '{0,0}', 100, 0.0167, 1, 'buy', 10, null)).fee, 0.085587::numeric,
          'a fee rounds up (5.124948 × 0.0167 = 0.08558663)');
select is((bj.price_trade('lmsr', '{10,0}', 100, 0.0167, 1, 'sell', 10, null)).amount, 5.124947::numeric,
          'selling the same 10 back returns the amount rounded down');
select is((bj.price_trade('lmsr', '{0,0}', 100, 0, 1, 'buy', 100000, null)).amount, 99930.685282::numeric,
          'a trade far beyond b stays exact: 100000 − 100·ln 2, rounded up');
select ok((bj.price_trade('lmsr', '{0,0}', 100, 0, 1, 'buy', 0.000001, null)).amount > 0,
          'even a millionth of a share costs something');

-- spend: the most shares the budget pays for, fee included, never more than the budget
select is((bj.price_trade('lmsr', '{0,0}', 100, 0.0167, 1, 'buy', null, 100)).total, 100.000000::numeric,
          'a budget of 100 is spent to the last micro-coin here');
select ok((select t.total <= 37.5 from bj.price_trade('lmsr', '{5,-3,2}', 40, 0.02, 2, 'buy', null, 37.5) t),
          'a spend never costs more than the budget');
select ok((select bj.ceil6(bj.curve_cost('lmsr', '{5,-3,2}', 40, 2, t.shares + 0.000001)) * 1.02 > 37.5
             from bj.price_trade('lmsr', '{5,-3,2}', 40, 0.02, 2, 'buy', null, 37.5) t),
          'and one more millionth of a share would not fit');
select ok((select t.shares > 0 and t.total <= 1 from bj.price_trade('sigmoid', '{0,0}', 100, 0.01, 1, 'buy', null, 1) t),
          'the sigmoid curve takes budgets too');
-- the sigmoid's budget is found by bisection, from below: the search up settles it, and a budget
-- that exactly pays for some shares buys them all (here one millionth more costs the same)
select (bj.price_trade('sigmoid', '{0,0}', 100, 0, 1, 'buy', 10, null)).total as exact10 \gset
select ok((select t.total <= :exact10
                  and (bj.price_trade('sigmoid', '{0,0}', 100, 0, 1, 'buy', t.shares + 0.000001, null)).total > :exact10
             from bj.price_trade('sigmoid', '{0,0}', 100, 0, 1, 'buy', null, :exact10) t),
          'a sigmoid budget buys the most shares it pays for, to the millionth');
select is((bj.price_trade('sigmoid', '{0,0}', 100, 0, 1, 'buy', 10, null)).amount,
          bj.ceil6(10 * (bj.sigmoid_price(0, 100) + bj.sigmoid_price(10, 100)) / 2),
          'the sigmoid executes at the average of its start and end price');
select is(bj.sigmoid_price(0, 100), 0.5::numeric, 'the sigmoid starts at 0.5: between its floor 0.01 and its cap 0.99');
select is(round(bj.sigmoid_price(100000, 100), 9), 0.99::numeric, 'and approaches its cap 0.99');

select * from finish();
rollback;
