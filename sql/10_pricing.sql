-- Pricing: pure functions, no table access. The market makers' curves and the one function
-- (bj.price_trade) that turns a request into exact amounts, used alike by api.quote and
-- api.trade. Working precision is 30 digits; money is rounded only at the end, costs up and
-- proceeds down, so rounding always favours the house.

-- exp(x) at working precision; below e^-70 the value is under the working precision anyway.
-- The small SQL functions here are not STRICT (a null gives null all the same): a STRICT
-- function whose body is not strict itself (a CASE) is never inlined, and a function that
-- is not inlined is parsed and planned again in every transaction that calls it.
create or replace function bj.wexp(p_x numeric) returns numeric
language sql immutable parallel safe
return case when p_x < -70 then 0 else round(exp(round(p_x, 30)), 30) end;

-- Money at 6 places, rounded up (what a trader pays) or down (what a trader receives).
create or replace function bj.ceil6(p_x numeric) returns numeric
language sql immutable strict parallel safe
return ceil(p_x * 1000000) / 1000000;

create or replace function bj.floor6(p_x numeric) returns numeric
language sql immutable strict parallel safe
return floor(p_x * 1000000) / 1000000;

---------------------------------------------------------------------------------------------
-- LMSR: C(q) = b·ln Σ exp(q_i/b), by log-sum-exp; prices are the softmax of q/b.

-- The largest element of an array (plain loops: a query per call would cost more than the math).
create or replace function bj.array_max(p_values numeric[]) returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_max numeric;
  v_x numeric;
begin
  foreach v_x in array p_values loop
    if v_max is null or v_x > v_max then
      v_max := v_x;
    end if;
  end loop;
  return v_max;
end $$;

create or replace function bj.lmsr_cost(p_q numeric[], p_b numeric) returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_m numeric := bj.array_max(p_q) / p_b;
  v_sum numeric := 0;
  v_qi numeric;
begin
  foreach v_qi in array p_q loop
    v_sum := v_sum + bj.wexp(v_qi / p_b - v_m);
  end loop;
  return round(p_b * (v_m + ln(v_sum)), 30);
end $$;

create or replace function bj.lmsr_prices(p_q numeric[], p_b numeric) returns numeric[]
language plpgsql immutable strict parallel safe as $$
declare
  v_m numeric := bj.array_max(p_q) / p_b;
  v_e numeric[] := p_q;
  v_sum numeric := 0;
begin
  for i in 1 .. cardinality(p_q) loop
    v_e[i] := bj.wexp(p_q[i] / p_b - v_m);
    v_sum := v_sum + v_e[i];
  end loop;
  for i in 1 .. cardinality(p_q) loop
    v_e[i] := round(v_e[i] / v_sum, 30);
  end loop;
  return v_e;
end $$;

create or replace function bj.lmsr_shares_for(p_q numeric[], p_b numeric, p_j int, p_amount numeric)
returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_m numeric := bj.array_max(p_q) / p_b;
  v_s numeric := 0;
  v_ej numeric := bj.wexp(p_q[p_j] / p_b - v_m);
  v_a numeric := p_amount / p_b;
  v_qi numeric;
begin
  foreach v_qi in array p_q loop
    v_s := v_s + bj.wexp(v_qi / p_b - v_m);
  end loop;
  return round(p_b * (v_m + v_a + ln(v_s - (v_s - v_ej) * bj.wexp(-v_a))) - p_q[p_j], 30);
end $$;

---------------------------------------------------------------------------------------------
-- The v1 sigmoid bonding curve: each outcome's price rises with its own shares,
-- p(x) = floor + (cap − floor) / (1 + e^(−(x − midpoint)/b)), floor 0.01, cap 0.99,
-- midpoint 0; a trade executes at the average of its start and end price.

create or replace function bj.sigmoid_price(p_x numeric, p_b numeric) returns numeric
language sql immutable parallel safe
return round(0.01 + 0.98 / (1 + bj.wexp(-p_x / p_b)), 30);

---------------------------------------------------------------------------------------------
-- The one dispatch point per pricing model (bj.pricing_models lists them and what they allow).
-- A new model is a row there, a branch in each function of this section, and its tests. A
-- model without a market maker ('book') has no curve: these raise for it, as for any model
-- they do not know, rather than price it as something else.

create or replace function bj.no_curve(p_pricing text) returns numeric
language plpgsql immutable as $$
begin
  perform bj.raise('BJ016', format('a %s market has no market maker: it trades against resting orders only', p_pricing));
  return null;
end $$;

-- Current prices, at working precision.
create or replace function bj.curve_prices(p_pricing text, p_q numeric[], p_b numeric)
returns numeric[]
language sql immutable parallel safe
return case p_pricing
  when 'lmsr' then bj.lmsr_prices(p_q, p_b)
  when 'sigmoid' then array(select bj.sigmoid_price(x, p_b) from unnest(p_q) x)
  else array[bj.no_curve(p_pricing)] end;

-- Moving outcome j by p_delta shares: what it costs the trader (negative: what it pays out)
-- and the prices after, in one pass (a trade's hot path: the LMSR's is written out here).
-- LMSR: each side is shifted by its own maximum (log-sum-exp); when the maximum does not move,
-- the exponentials of the other outcomes are shared.
create or replace function bj.curve_move(p_pricing text, p_q numeric[], p_b numeric, p_j int,
                                         p_delta numeric, out cost numeric, out prices numeric[])
language plpgsql immutable strict parallel safe as $$
declare
  v_after numeric[] := p_q;
  v_n int := cardinality(p_q);
  v_m0 numeric;
  v_m1 numeric;
  v_e numeric[] := p_q;
  v_s0 numeric := 0;
  v_s1 numeric := 0;
begin
  v_after[p_j] := p_q[p_j] + p_delta;
  case p_pricing
    when 'lmsr' then
      v_m0 := bj.array_max(p_q) / p_b;
      v_m1 := bj.array_max(v_after) / p_b;
      for i in 1 .. v_n loop
        v_e[i] := bj.wexp(p_q[i] / p_b - v_m0);
        v_s0 := v_s0 + v_e[i];
      end loop;
      for i in 1 .. v_n loop
        if i = p_j or v_m1 <> v_m0 then
          v_e[i] := bj.wexp(v_after[i] / p_b - v_m1);
        end if;
        v_s1 := v_s1 + v_e[i];
      end loop;
      cost := round(p_b * (v_m1 + ln(v_s1) - v_m0 - ln(v_s0)), 30);
      for i in 1 .. v_n loop
        v_e[i] := round(v_e[i] / v_s1, 30);
      end loop;
      prices := v_e;
    when 'sigmoid' then
      cost := round(p_delta * (bj.sigmoid_price(p_q[p_j], p_b) + bj.sigmoid_price(v_after[p_j], p_b)) / 2, 30);
      prices := bj.curve_prices(p_pricing, v_after, p_b);
    else
      cost := bj.no_curve(p_pricing);
  end case;
end $$;

-- What moving outcome j by p_delta shares costs the trader (negative: what it pays out).
create or replace function bj.curve_cost(p_pricing text, p_q numeric[], p_b numeric, p_j int,
                                         p_delta numeric)
returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_after numeric[] := p_q;
begin
  v_after[p_j] := p_q[p_j] + p_delta;
  case p_pricing
    when 'lmsr' then
      return bj.lmsr_cost(v_after, p_b) - bj.lmsr_cost(p_q, p_b);
    when 'sigmoid' then
      return round(p_delta * (bj.sigmoid_price(p_q[p_j], p_b)
                              + bj.sigmoid_price(v_after[p_j], p_b)) / 2, 30);
    else
      return bj.no_curve(p_pricing);
  end case;
end $$;

-- Shares of outcome j that an amount buys (before the 6-place rounding).
create or replace function bj.curve_shares_for(p_pricing text, p_q numeric[], p_b numeric,
                                               p_j int, p_amount numeric)
returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_lo numeric := 0;
  v_hi numeric := p_amount / 0.01;
  v_mid numeric;
begin
  case p_pricing
    when 'lmsr' then
      return bj.lmsr_shares_for(p_q, p_b, p_j, p_amount);
    when 'sigmoid' then
      -- the sigmoid's cost is increasing in the shares: bisect to a tenth of a millionth
      while v_hi - v_lo > 0.0000001 loop
        v_mid := (v_lo + v_hi) / 2;
        if bj.curve_cost(p_pricing, p_q, p_b, p_j, v_mid) <= p_amount then
          v_lo := v_mid;
        else
          v_hi := v_mid;
        end if;
      end loop;
      return v_lo;
    else
      return bj.no_curve(p_pricing);
  end case;
end $$;

-- The change of outcome j's quantity that moves its price to p_target (positive: bought up to
-- it; negative: sold down to it), before rounding. Closed forms: for the LMSR, p_j = t when
-- q_j = b·(ln t − ln(1 − t) + ln Σ_{k≠j} e^(q_k/b)); for the sigmoid, x = −b·ln(0.98/(t − 0.01) − 1).
create or replace function bj.curve_shares_to(p_pricing text, p_q numeric[], p_b numeric, p_j int,
                                              p_target numeric)
returns numeric
language plpgsql immutable strict parallel safe as $$
declare
  v_m numeric;
  v_s numeric := 0;
begin
  case p_pricing
    when 'lmsr' then
      v_m := bj.array_max(p_q) / p_b;
      for i in 1 .. cardinality(p_q) loop
        if i <> p_j then
          v_s := v_s + bj.wexp(p_q[i] / p_b - v_m);
        end if;
      end loop;
      return round(p_b * (ln(p_target) - ln(1 - p_target) + v_m + ln(v_s)) - p_q[p_j], 30);
    when 'sigmoid' then
      if p_target <= 0.01 or p_target >= 0.99 then
        return case when p_target >= 0.99 then 1e12 else -1e12 end;  -- beyond the curve's range
      end if;
      return round(-p_b * ln(0.98 / (p_target - 0.01) - 1) - p_q[p_j], 30);
    else
      return bj.no_curve(p_pricing);
  end case;
end $$;

-- Prices as clients see them: 9 places, strictly between 0 and 1.
create or replace function bj.display_prices(p_prices numeric[]) returns numeric(12, 9)[]
language plpgsql immutable strict parallel safe as $$
declare
  v_out numeric(12, 9)[] := p_prices;
begin
  for i in 1 .. cardinality(p_prices) loop
    v_out[i] := least(greatest(round(p_prices[i], 9), 0.000000001), 0.999999999);
  end loop;
  return v_out;
end $$;

---------------------------------------------------------------------------------------------
-- A taking order's quantity: shares, or a budget for a buy; refused otherwise (BJ020, BJ021).
create or replace function bj.check_quantity(p_side text, p_shares numeric, p_spend numeric)
returns void
language plpgsql immutable as $$
begin
  if p_side is null or p_side not in ('buy', 'sell') then
    perform bj.raise('BJ021', 'side must be buy or sell');
  end if;
  if (p_shares is null) = (p_spend is null) then
    perform bj.raise('BJ020', 'give exactly one of shares and spend');
  end if;
  if p_shares is not null and (p_shares <= 0 or p_shares > 1000000000 or p_shares <> round(p_shares, 6)) then
    perform bj.raise('BJ020', 'shares must be positive, at most 1e9, with at most 6 decimals');
  end if;
  if p_spend is not null and (p_spend <= 0 or p_spend > 1000000000 or p_spend <> round(p_spend, 6)) then
    perform bj.raise('BJ020', 'spend must be positive, at most 1e9, with at most 6 decimals');
  end if;
  if p_spend is not null and p_side <> 'buy' then
    perform bj.raise('BJ020', 'spend is a budget for buys; sell by shares');
  end if;
end $$;

-- The most shares at a fixed price whose cost, rounded up, and fee stay within a budget.
create or replace function bj.shares_within(p_price numeric, p_fee_rate numeric, p_budget numeric)
returns numeric
language plpgsql immutable as $$
declare
  v_s numeric;
begin
  if p_budget <= 0 then
    return 0;
  end if;
  v_s := bj.floor6(p_budget / (p_price * (1 + p_fee_rate)));
  -- the rounding of cost and fee may take a millionth or two more than the exact quotient
  while v_s > 0 and bj.ceil6(p_price * v_s) + bj.ceil6(bj.ceil6(p_price * v_s) * p_fee_rate) > p_budget loop
    v_s := v_s - 0.000001;
  end loop;
  return greatest(v_s, 0);
end $$;

-- What a resting order's maker pays (a bid) or receives (an ask) for one fill of p_shares at its
-- own price, after p_filled already, and its fee: each rounded cumulatively over the order's
-- fills, so that a bid never pays more in all than its escrow (its cost and fee, rounded up)
-- and an ask never receives more than its proceeds rounded down.
create or replace function bj.maker_amounts(p_side text, p_price numeric, p_filled numeric,
                                            p_shares numeric, p_fee_rate numeric,
                                            out amount numeric, out fee numeric)
language plpgsql immutable as $$
declare
  v_before numeric;
  v_after numeric;
begin
  if p_side = 'buy' then
    v_before := bj.ceil6(p_price * p_filled);
    v_after := bj.ceil6(p_price * (p_filled + p_shares));
  else
    v_before := bj.floor6(p_price * p_filled);
    v_after := bj.floor6(p_price * (p_filled + p_shares));
  end if;
  amount := v_after - v_before;
  fee := bj.ceil6(v_after * p_fee_rate) - bj.ceil6(v_before * p_fee_rate);
end $$;

-- The exact terms of a trade on a market in its current state: the single computation behind
-- both api.quote and api.trade. Buying s shares costs amount = ceil(C(q + s) − C(q)) plus
-- fee = ceil(amount · fee_rate); selling returns amount = floor(C(q) − C(q − s)) less the fee.
-- A spend budget (buys only) buys the most shares whose total stays within it.
-- With p_quiet, a budget that buys nothing answers 0 shares instead of refusing (the router
-- asks what the rest of a budget buys).
drop function if exists bj.price_trade(text, numeric[], numeric, numeric, int, text, numeric, numeric);
create or replace function bj.price_trade(
  p_pricing text, p_q numeric[], p_b numeric, p_fee_rate numeric, p_j int, p_side text,
  p_shares numeric, p_spend numeric, p_quiet boolean default false,
  out shares numeric, out amount numeric, out fee numeric, out total numeric,
  out q_after numeric[], out prices_after numeric[])
language plpgsql immutable parallel safe as $$
declare
  v_sign int := case p_side when 'buy' then 1 else -1 end;
  v_move record;
  v_cost numeric;
begin
  if p_quiet and p_spend <= 0 then
    shares := 0;
    return;
  end if;
  perform bj.check_quantity(p_side, p_shares, p_spend);

  if p_spend is not null then
    shares := bj.floor6(bj.curve_shares_for(p_pricing, p_q, p_b, p_j, p_spend / (1 + p_fee_rate)));
    -- the closed form lands within a millionth or two: settle on the largest that fits
    loop
      exit when shares <= 0;
      amount := bj.ceil6(bj.curve_cost(p_pricing, p_q, p_b, p_j, shares));
      exit when amount + bj.ceil6(amount * p_fee_rate) <= p_spend;
      shares := shares - 0.000001;
    end loop;
    loop
      amount := bj.ceil6(bj.curve_cost(p_pricing, p_q, p_b, p_j, shares + 0.000001));
      exit when amount + bj.ceil6(amount * p_fee_rate) > p_spend;
      shares := shares + 0.000001;
    end loop;
    if shares <= 0 then
      if p_quiet then
        shares := 0;
        return;
      end if;
      perform bj.raise('BJ020', 'the budget buys no share');
    end if;
  else
    shares := p_shares;
  end if;

  q_after := p_q;
  q_after[p_j] := p_q[p_j] + v_sign * shares;
  v_move := bj.curve_move(p_pricing, p_q, p_b, p_j, v_sign * shares);
  v_cost := v_move.cost;
  prices_after := v_move.prices;
  if p_side = 'buy' then
    amount := bj.ceil6(v_cost);
    fee := bj.ceil6(amount * p_fee_rate);
    total := amount + fee;
  else
    amount := bj.floor6(-v_cost);
    fee := bj.ceil6(amount * p_fee_rate);
    total := amount - fee;
    if total <= 0 then
      perform bj.raise('BJ020', 'the sale is too small to return anything');
    end if;
  end if;
end $$;
drop function if exists bj.lmsr_move(numeric[], numeric, int, numeric);
