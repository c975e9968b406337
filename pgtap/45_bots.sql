-- sql/45_bots.sql: BetJeeScript parsed, audited and evaluated; every refused construct with its
-- place; built-ins; bots as accounts of their owners, their runs (cooldown, pause, a failing
-- action recorded, replay), and ownership: nobody else reads, changes or runs a bot.
begin;
\ir helpers/setup.psql
select plan(77);

select tests.market('bm') \gset
select tests.market('bn', '{RED,GREEN,BLUE}') \gset
select tests.user('olga') as olga, tests.user('pete') as pete \gset

-- a refusal's detail, or null when the program passes
create function tests.refusal(p_source text) returns text
language plpgsql as $$
begin
  perform bj.bot_parse(p_source);
  return null;
exception when sqlstate 'BJ040' then
  declare v_detail text;
  begin
    get stacked diagnostics v_detail = pg_exception_detail;
    return v_detail;
  end;
end $$;
-- evaluate a source against inputs
create function tests.run(p_source text, p_inputs jsonb default '{}') returns jsonb
language sql as $$ select bj.bot_eval(bj.bot_parse(p_source), p_inputs) $$;

-- valid programs
select is(tests.refusal($$const p = price("bm", "YES")
if (p < 0.4 && balance() > 10) { buy("bm", "YES", 5) } else if (p > 0.6) sell("bm", "YES", 5)
else { log("hold at " + p); return }
/* a comment */ cancel_all("bm") // and another
$$), null, 'a strategy parses: consts, if / else if / else, blocks, return, comments, actions');
select is(bj.bot_parse('log(1 + 2 * 3)') -> 'body' -> 0 -> 'expr' -> 'args' -> 0 ->> 'op', '+', 'precedence: * before +');
select is(bj.bot_parse('log(1 - 2 - 3)') -> 'body' -> 0 -> 'expr' -> 'args' -> 0 -> 'left' ->> 'op', '-', 'left to right');
select is(bj.bot_parse(E'const a = 1\nconst b = 2;log(a + b)') -> 'body' -> 1 ->> 'name', 'b', 'semicolons optional at the end of a line');
select is(bj.bot_parse('log("x")') -> 'body' -> 0 -> 'at', '[1, 1]', 'every node knows its place');

-- every refused construct, with its place
select is(tests.refusal(E'log(1)\nlog(2)\n    while (true) { }'), 'loops are not allowed: `while` at 3:5', 'while');
select is(tests.refusal('for (const x = 0; x < 3; ) {}'), 'loops are not allowed: `for` at 1:1', 'for');
select is(tests.refusal('do { } while (true)'), 'loops are not allowed: `do` at 1:1', 'do');
select is(tests.refusal('function f() {}'), 'defining functions is not allowed: `function` at 1:1', 'function');
select is(tests.refusal('const f = (x) => x'), 'defining functions is not allowed: `=>` at 1:15', 'arrow functions');
select is(tests.refusal('class A {}'), 'defining functions is not allowed: `class` at 1:1', 'classes');
select is(tests.refusal('foo(1)'), 'calling anything but a built-in is not allowed: `foo` at 1:1', 'a call of anything but a built-in');
select is(tests.refusal('const a = 1; a(2)'), 'calling anything but a built-in is not allowed: `a` at 1:14', 'a call of a name');
select is(tests.refusal('const a = 1; log(a.b)'), 'member access is not allowed: `.` at 1:19', 'member access: .');
select is(tests.refusal('const a = 1; log(a[0])'), 'member access is not allowed: `[` at 1:19', 'member access: []');
select is(tests.refusal('const a = 1; a = 2'), 'assignment is not allowed: `=` at 1:16', 'assignment after declaration');
select is(tests.refusal('const a = 1; a += 2'), 'assignment is not allowed: `+=` at 1:16', 'compound assignment');
select is(tests.refusal('const a = 1; a++'), 'assignment is not allowed: `++` at 1:15', 'increment');
select is(tests.refusal('let a = 1'), 'only const declarations are allowed: `let` at 1:1', 'let');
select is(tests.refusal('var a = 1'), 'only const declarations are allowed: `var` at 1:1', 'var');
select is(tests.refusal('log(new Date())'), '`new` is not allowed at 1:5', 'new');
select is(tests.refusal('log(this)'), '`this` is not allowed at 1:5', 'this');
select is(tests.refusal('eval("buy()")'), '`eval` is not allowed at 1:1', 'eval');
select is(tests.refusal('log(`x`)'), 'template literals are not allowed: `` ` `` at 1:5', 'template literals');
select is(tests.refusal('const r = /ab+c/'), 'regular-expression literals are not allowed: `/` at 1:11', 'regular-expression literals');
select is(tests.refusal('log(1 == 1)'), '`==` is not in the language (write ===) at 1:7', '==');
select is(tests.refusal('log(fetch)'), 'unknown name `fetch` at 1:5', 'an unknown name');
select is(tests.refusal('window.fetch("x")'), 'member access is not allowed: `.` at 1:7', 'window.fetch');
select is(tests.refusal('const a = 1; { const a = 2 } const a = 3'), '`a` is already declared in this block at 1:30', 'a name declared twice');
select is(tests.refusal('const price = 1'), '`price` is a built-in and cannot be declared at 1:1', 'a built-in''s name');
select is(tests.refusal('buy("bm", "YES")'), '`buy` takes 3 arguments at 1:1', 'a built-in''s arity');
select is(tests.refusal('buy("nowhere", "YES", 1)'), 'no market `nowhere` at 1:5', 'an unknown market named by a literal');
select is(tests.refusal('buy("bm", "MAYBE", 1)'), 'no outcome `MAYBE` in market `bm` at 1:11', 'an unknown outcome');
select is(tests.refusal('log(0.1234567890123456789)'), 'the number 0.1234567890123456789 is out of range (at most 18 decimals, below 1e30) at 1:5', 'a literal too precise');
select is(tests.refusal('log("a' || chr(10) || '")'), 'an unterminated string at 1:5', 'an unterminated string');
select is(tests.refusal('log(1) /* '), 'an unterminated comment at 1:8', 'an unterminated comment');
select is(tests.refusal('log(1) # 2'), 'unexpected `#` at 1:8', 'a character the language lacks');
select is(tests.refusal('return 5'), 'return takes no value at 1:8', 'return takes no value');
select is(tests.refusal(repeat('buy("bm", "YES", 1)' || chr(10), 11)), 'more than 10 actions at 11:1', 'more than 10 actions');
select is(tests.refusal(repeat('log(1)' || chr(10), 334)), 'the program is over 1000 nodes at 334:1', 'more than 1000 nodes');
select is(tests.refusal(repeat(' ', 8193)), 'the source is over 8 KB (8,192 bytes) at 1:1', 'a source over 8 KB');
select is(tests.refusal('log(' || repeat('!', 70) || '1)'), 'nesting deeper than 64 levels at 1:66', 'a tree deeper than 64 levels');
select is(tests.refusal('log(' || repeat('(', 63) || '1' || repeat(')', 63) || ')'), null, 'parentheses are no level of the tree');
select is(tests.refusal('log(' || repeat('(', 64) || '1' || repeat(')', 64) || ')'), 'parentheses nested more than 64 deep at 1:68',
          'but nested more than 64 deep they are refused');
select is(tests.refusal('log(1' || repeat(' + 1', 60) || ')'), null, 'a chain of 60 operators in a call is 64 levels deep');
select is(tests.refusal('log(1' || repeat(' + 1', 61) || ')'), 'nesting deeper than 64 levels at 1:5', 'a chain of 61, 65 (its first operand the deepest)');
select is(tests.refusal(repeat('1;', 4096)), 'the program is over 1000 nodes at 1:2001', 'a long program is refused as soon as it is too long');
select is(tests.run('if (true) ; else log(1)'), '{"logs": [], "error": null, "inputs": {}, "actions": []}', 'an empty statement as a branch is an empty block');
select is(tests.run($$log(avg_price("bm", "YES", "30"))$$, '{"avg_price(bm,YES,30)": 0.5}') ->> 'error',
          'avg_price takes whole minutes from 1 to 1440 at 1:5', 'a built-in''s arguments are checked even when its value was read');
select throws_ok($$ select bj.bot_parse('while(1){}') $$, 'BJ040', 'the program is refused', 'refusals are BJ040');

-- evaluation: exact numbers, JavaScript's truthiness and short circuits, built-ins from inputs
select is(tests.run('log(0.1 + 0.2 === 0.3); log(1 / 3); log(2 * 0.5); log("a" + 1.50); log(!0); log("" || "x"); log(0 && 1)') -> 'logs',
          '["true", "0.333333333333333333", "1", "a1.5", "true", "x", "0"]', 'exact decimals, truthiness, short circuits');
select is(tests.run('log(1 / 0); buy("bm", "YES", 1)'), '{"logs": [], "error": "division by zero at 1:7", "inputs": {}, "actions": []}',
          'an error stops the run, and no action is performed');
select is(tests.run('log(1); log("a" - 1)') -> 'logs', '["1"]', 'the log up to an error stays');
select is(tests.run('if (price("bm", "YES") < 0.5) buy("bm", "YES", 2)', '{"price(bm,YES)": 0.4}') -> 'actions',
          '[{"do": "buy", "args": ["bm", "YES", 2]}]', 'a built-in reads its input');
select is(tests.run('log(price("bm", "YES"))') ->> 'error', 'no input for price(bm,YES) at 1:5', 'and without it, the run fails');
select is(tests.run('log(volume("bm", 0))') ->> 'error', 'volume takes whole minutes from 1 to 1440 at 1:5', 'minutes are checked');
select is(tests.run('const a = 1; { const a = 2; log(a) } log(a); return; log(3)') -> 'logs', '["2", "1"]', 'blocks scope their consts; return stops');

-- bots: accounts of their owners
select bj.create_bot(:olga, 'olgabot', $$const p = price("bm", "YES")
log("saw " + p)
if (p < 0.6) buy("bm", "YES", 5)
sell("bn", "RED", 1000000)$$, '{bm}') \gset
select is((select is_bot and owner_id = :olga from bj.users where username = 'olgabot'), true, 'a bot is an account, labelled, owned');
select ok(not exists (select 1 from bj.credentials c join bj.users u on u.id = c.user_id where u.username = 'olgabot'), 'with no password');
select throws_ok($$ select bj.create_bot($$ || :olga || $$, 'olgabot', 'log(1)', '{bm}') $$, 'BJ009', null, 'a taken name');
select throws_ok($$ select bj.create_bot($$ || :olga || $$, 'x2', 'while(true){}', '{bm}') $$, 'BJ040', null, 'a refused program makes no bot');
select profit as olga_profit from analytics.leaderboard_live where username = 'olga' \gset
select bj.fund_bot(:olga, 'olgabot', 50) \gset
select is((select balance::numeric from bj.users where username = 'olgabot'), 50::numeric, 'funded from its owner');
select results_eq($$ select username, profit, is_bot from analytics.leaderboard_live where username in ('olga', 'olgabot') order by username $$,
                  format($$ values ('olga', %s::numeric, false), ('olgabot', 0::numeric, true) $$, :'olga_profit'),
                  'on the leaderboard as a bot; funding it is no profit or loss of either');
select throws_ok($$ select bj.fund_bot($$ || :pete || $$, 'olgabot', 5) $$, 'BJ041', null, 'nobody else funds it');
select throws_ok($$ select bj.bot_runs($$ || :pete || $$, 'olgabot', 10) $$, 'BJ041', null, 'nor reads its runs');
select throws_ok($$ select bj.set_bot_status($$ || :pete || $$, 'olgabot', 'paused') $$, 'BJ041', null, 'nor pauses it');

-- a run: once the market changes; a refused action is recorded and the others stand
select is(admin.run_bot(), null, 'no change, no run');
select bj.trade(:pete, 'bm', 'NO', 'buy', 1, null, null, null, null) \gset
select admin.run_bot() as run \gset
select is((select jsonb_array_length(actions) from bj.bot_runs where id = :run), 2, 'the market changed: it ran, with its two actions');
select ok((select actions -> 0 ? 'result' and actions -> 1 -> 'error' ->> 'code' = 'BJ001' from bj.bot_runs where id = :run),
          'the buy done, the sale refused (funds for its collateral) and recorded');
select is((select (admin.replay_bot_run(:run)) ->> 'same'), 'true', 'replaying its inputs gives its actions and log');
select bj.trade(:pete, 'bm', 'NO', 'buy', 1, null, null, null, null) \gset
select is(admin.run_bot(), null, 'the cooldown holds it back');
update bj.bots set last_run_at = last_run_at - interval '1 hour';
select bj.set_bot_status(:olga, 'olgabot', 'paused') \gset
select is(admin.run_bot(), null, 'paused, it does not run');
select bj.set_bot_status(:olga, 'olgabot', 'active') \gset
select isnt(admin.run_bot(), null, 'resumed, it runs');
select is(jsonb_array_length(bj.bot_runs(:olga, 'olgabot', 10)), 2, 'its owner reads its runs');
-- a run performs at most max_cascade actions: a person's trade never waits for more
select admin.configure('max_cascade', '1') \gset
select bj.trade(:pete, 'bm', 'NO', 'buy', 1, null, null, null, null) \gset
update bj.bots set last_run_at = last_run_at - interval '1 hour';
select admin.run_bot() as run \gset
select is((select actions -> 1 -> 'error' ->> 'message' from bj.bot_runs where id = :run),
          'not performed: a run performs at most 1 actions (max_cascade)', 'actions past max_cascade are not performed, and say so');
select admin.configure('max_cascade', '20') \gset
select bj.set_bot_status(:olga, 'olgabot', 'deleted') \gset
select is((select balance::numeric from bj.users where username = 'olgabot'), 0::numeric, 'deleted, its cash went back to its owner');
select is_empty('select * from admin.check_invariants()', 'invariants hold');

select * from finish();
rollback;
