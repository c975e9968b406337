-- Every SQLSTATE the project raises, with its message, hint and HTTP status: the one list the
-- HTTP layer reads its mapping from (api/errors.py) and docs/errors.md describes.
-- Class BJ is ours; PTxyz means "HTTP status xyz" as in PostgREST.

create or replace view bj.error_codes as
select * from (values
  ('BJ001', 'insufficient_funds',    409, 'the balance does not cover this',             'check api.me() for your balance'),
  ('BJ002', 'market_not_open',       409, 'the market is not open for trading',          'see the market''s status and close_at'),
  ('BJ003', 'slippage_exceeded',     409, 'the price moved past your bound',             'quote again, or widen max_total / min_total'),
  ('BJ004', 'idempotency_conflict',  409, 'this idempotency key was used with other arguments', 'use a new key for a new trade'),
  ('BJ005', 'insufficient_shares',   409, 'not enough shares for this',                  'this market does not allow short sales'),
  ('BJ006', 'market_maker_limit',    409, 'the market maker cannot take this trade',     'trade a smaller amount'),
  ('BJ007', 'order_not_open',        409, 'the order is no longer open',                 null),
  ('BJ008', 'market_state',          409, 'the market is not in a state that allows this', null),
  ('BJ009', 'username_taken',        409, 'that username is taken',                      'choose another username'),
  ('BJ010', 'unknown_market',        404, 'no such market',                              'api.list_markets() lists them'),
  ('BJ011', 'unknown_outcome',       400, 'no such outcome in this market',              'api.get_market() lists the outcomes'),
  ('BJ012', 'unknown_order',         404, 'no such order',                               null),
  ('BJ013', 'unknown_user',          404, 'no such user',                                null),
  ('BJ014', 'order_would_take',      409, 'a post-only order would take liquidity',      'price it so that it rests, or drop post_only'),
  ('BJ015', 'order_not_fillable',    409, 'a fill-or-kill order cannot fill whole',      'see api.book for the liquidity'),
  ('BJ016', 'no_liquidity',          409, 'nothing to trade against within the limit',   'see api.book; a limit order rests until met'),
  ('BJ020', 'invalid_quantity',      400, 'invalid quantity',                            null),
  ('BJ021', 'invalid_argument',      400, 'invalid argument',                            null),
  ('BJ022', 'invalid_credentials',   401, 'wrong username or password',                  null),
  ('BJ023', 'weak_password',         400, 'the password is too weak',                    'use at least 8 characters'),
  ('BJ024', 'invalid_username',      400, 'invalid username',                            '3 to 32 characters: a-z, 0-9, _'),
  ('BJ025', 'not_authenticated',     401, 'this call needs a logged-in trader',          'send Authorization: Bearer <token>'),
  ('BJ026', 'account_disabled',      403, 'this account is disabled',                    null),
  ('BJ027', 'unknown_setting',       400, 'no such setting',                             'admin.settings() lists them'),
  ('BJ030', 'trade_rate_limited',    429, 'too many trades: wait for the cooldown',      'see trade_cooldown_ms'),
  ('BJ031', 'signup_rate_limited',   429, 'too many signups from this address',          'wait as long as Retry-After says'),
  ('BJ032', 'login_rate_limited',    429, 'too many failed logins',                      'wait as long as Retry-After says'),
  ('BJ040', 'program_refused',       400, 'the program is refused',                      'docs/bots.md says what BetJeeScript allows'),
  ('BJ041', 'unknown_bot',           404, 'no such bot',                                 'api.my_bots() lists yours'),
  ('BJ050', 'statistics_unavailable', 503, 'statement statistics are not collected here', 'load pg_stat_statements: docs/dba.md'),
  ('BJ060', 'checkpoint_refused',    409, 'no checkpoint of the ledger was written', 'the detail says why; admin.check_invariants_full() lists what is wrong'),
  ('BJ900', 'ledger_append_only',    403, 'the ledger is append-only',                   'post a compensating entry instead')
) as t(code, name, status, message, hint);

-- Raise one of the errors above, with an optional detail.
create or replace function bj.raise(p_code text, p_detail text default null)
returns void
language plpgsql stable as $$
declare
  v_error record;
begin
  select * into v_error from bj.error_codes e where e.code = p_code;
  if not found then
    raise exception 'unknown error code %', p_code;
  end if;
  raise exception using errcode = v_error.code, message = v_error.message,
    detail = coalesce(p_detail, ''), hint = coalesce(v_error.hint, '');
end $$;

-- Refuse a call without raising, so that what the refusal must record (a failed login counts
-- against its throttle) commits: set the status and headers of the answer the way PostgREST
-- reads them (response.status, response.headers: for this transaction only) and return the
-- error body {code, message, details, hint}. With p_retry_after (seconds), a Retry-After header.
create or replace function bj.refuse(p_code text, p_detail text default null,
                                     p_retry_after numeric default null)
returns jsonb
language plpgsql as $$
declare
  v_error record;
begin
  select * into v_error from bj.error_codes e where e.code = p_code;
  if not found then
    raise exception 'unknown error code %', p_code;
  end if;
  perform set_config('response.status', v_error.status::text, true);
  if p_retry_after is not null then
    perform set_config('response.headers',
      jsonb_build_array(jsonb_build_object('Retry-After', greatest(1, ceil(p_retry_after))::text))::text, true);
  end if;
  return jsonb_build_object('code', v_error.code, 'message', v_error.message,
                            'details', nullif(p_detail, ''), 'hint', v_error.hint);
end $$;

-- The HTTP layer reads the list at start-up, as its login role.
grant usage on schema bj to authenticator;
grant select on bj.error_codes to authenticator;
