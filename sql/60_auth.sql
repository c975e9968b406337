-- Identity: traders (bj.users, public profile) apart from their secrets (bj.credentials,
-- bcrypt hashes), HS256 tokens signed in SQL, request claims, and the signup defences.
-- Invariants kept here: no client role reads a hash or the signing secret; login does the
-- same work whether or not the user exists; no more than signup_ip_max accounts per address
-- within signup_ip_window_s, however many signups race.

-- The calling trader, who must be logged in and not disabled.
create or replace function bj.require_user() returns bigint
language plpgsql stable as $$
declare
  v_uid bigint := auth.uid();
  v_disabled timestamptz;
begin
  if v_uid is null then
    perform bj.raise('BJ025');
  end if;
  select u.disabled_at into v_disabled from bj.users u where u.id = v_uid;
  if not found or v_disabled is not null then
    perform bj.raise('BJ026');
  end if;
  return v_uid;
end $$;

---------------------------------------------------------------------------------------------
-- Tokens

create or replace function bj.base64url(p_bytes bytea) returns text
language sql immutable strict parallel safe
return translate(encode(p_bytes, 'base64'), E'+/=\n', '-_');

-- Store the signing secret (from the environment, at deploy time).
create or replace function bj.set_jwt_secret(p_secret text) returns void
language plpgsql as $$
begin
  if p_secret is null or length(p_secret) < 32 then
    raise exception 'the JWT secret must have at least 32 characters';
  end if;
  insert into bj.secrets (name, value) values ('jwt', p_secret)
  on conflict (name) do update set value = excluded.value;
end $$;

-- A signed HS256 token for a trader: {sub, role, username, iat, exp}.
create or replace function bj.issue_token(p_user bigint, p_username text) returns jsonb
language plpgsql stable as $$
declare
  v_now bigint := floor(extract(epoch from clock_timestamp()))::bigint;
  v_exp bigint := v_now + bj.setting('token_ttl_s')::bigint;
  v_secret text;
  v_signing_input text;
begin
  select s.value into v_secret from bj.secrets s where s.name = 'jwt';
  if v_secret is null then
    raise exception 'no JWT secret is configured' using hint = 'set BETJEE_JWT_SECRET and migrate';
  end if;
  v_signing_input := bj.base64url(convert_to('{"alg":"HS256","typ":"JWT"}', 'utf8')) || '.' ||
    bj.base64url(convert_to(jsonb_build_object('sub', p_user::text, 'role', 'authenticated',
      'username', p_username, 'iat', v_now, 'exp', v_exp)::text, 'utf8'));
  return jsonb_build_object(
    'token', v_signing_input || '.' ||
             bj.base64url(extensions.hmac(convert_to(v_signing_input, 'utf8'), convert_to(v_secret, 'utf8'), 'sha256')),
    'expires_at', to_timestamp(v_exp));
end $$;

---------------------------------------------------------------------------------------------
-- The throttle: failed logins and refused signups counted per key ('login:ip:A',
-- 'login:user:U', 'signup:ip:A') within a window; from the limit on, the key is refused for
-- throttle_backoff_s, doubling with every further failure up to throttle_backoff_max_s.
-- Checked before any password is hashed, so a refused attempt costs no bcrypt work.

-- How many seconds a key is still refused for, or null.
create or replace function bj.throttle_wait(p_key text) returns numeric
language sql stable
begin atomic
  select extract(epoch from t.blocked_until - clock_timestamp())
    from bj.throttle t where t.key = p_key and t.blocked_until > clock_timestamp();
end;

-- Count a failure against a key; returns how many seconds the key is now refused for, or null.
-- A window restarts only once the previous one, and any refusal, are a window in the past, so
-- the back-off keeps growing for as long as the failures keep coming.
create or replace function bj.throttle_fail(p_key text, p_max int, p_window_s numeric) returns numeric
language plpgsql as $$
declare
  v_now timestamptz := clock_timestamp();
  v_window interval := make_interval(secs => p_window_s);
  v_base numeric := bj.setting('throttle_backoff_s')::numeric;
  v_cap numeric := bj.setting('throttle_backoff_max_s')::numeric;
  v_row bj.throttle;
begin
  insert into bj.throttle as t (key, failures, window_start) values (p_key, 1, v_now)
  on conflict (key) do update
     set failures = case when t.window_start <= v_now - v_window
                          and coalesce(t.blocked_until, '-infinity') <= v_now - v_window
                         then 1 else t.failures + 1 end,
         window_start = case when t.window_start <= v_now - v_window
                              and coalesce(t.blocked_until, '-infinity') <= v_now - v_window
                             then v_now else t.window_start end
  returning * into v_row;
  if v_row.failures < p_max then
    return null;
  end if;
  update bj.throttle t
     set blocked_until = v_now + make_interval(secs => least(v_cap, v_base * 2 ^ least(v_row.failures - p_max, 30)))
   where t.key = p_key returning * into v_row;
  -- now and then, forget the keys of this family that nothing has counted against for a window
  if random() < 0.02 then
    delete from bj.throttle t
     where t.ctid = any (array(
             select x.ctid from bj.throttle x
              where x.key like split_part(p_key, ':', 1) || ':%'
                and x.window_start < v_now - v_window - make_interval(secs => v_cap)
                and coalesce(x.blocked_until, '-infinity') < v_now - v_window
              limit 1000));
  end if;
  return extract(epoch from v_row.blocked_until - v_now);
end $$;

---------------------------------------------------------------------------------------------
-- Accounts

-- What a username is: 3 to 32 of a-z, 0-9 and _. Names starting with _ are the exchange's own
-- (the _burned account); signup refuses them. The one place this rule lives: the row trigger
-- below and bj.signup both ask it.
create or replace function bj.is_username(p_name text) returns boolean
language sql immutable parallel safe
return p_name ~ '^[a-z0-9_]{3,32}$';

-- Every username written to bj.users is one (an AFTER trigger on that column only: a trade, which
-- writes the trader's balance, does not pay for the check).
create or replace function bj.username_is_valid() returns trigger
language plpgsql set search_path = '' as $$
begin
  if not bj.is_username(new.username) then
    raise exception 'new row for relation "users" violates check constraint "users_username_check"'
      using errcode = 'check_violation', constraint = 'users_username_check', table = 'users', schema = 'bj';
  end if;
  return new;
end $$;

-- Open an account, credit the signup bonus from the house, and log in. An address over its
-- limit is refused with the time until the oldest of its signups leaves the window, or
-- longer if it keeps trying (the throttle's back-off); the refusal is returned, not raised,
-- so that its count commits.
create or replace function bj.signup(p_username text, p_password text, p_ip inet) returns jsonb
language plpgsql as $$
declare
  v_user bj.users;
  v_bonus numeric := bj.setting('signup_bonus')::numeric;
  v_window numeric;
  v_recent int;
  v_oldest timestamptz;
  v_wait numeric;
begin
  if p_username is null or not bj.is_username(p_username) or p_username like '\_%' then
    perform bj.raise('BJ024', '3 to 32 characters: a-z, 0-9, _, starting with a letter or digit');
  end if;
  if p_password is null or length(p_password) < bj.setting('min_password_length')::int then
    perform bj.raise('BJ023', format('at least %s characters', bj.setting('min_password_length')));
  end if;
  -- bcrypt reads 72 bytes and ignores the rest: a longer password would not be what is checked
  if octet_length(p_password) > 72 then
    perform bj.raise('BJ023', 'at most 72 bytes (UTF-8)');
  end if;
  if p_ip is not null then
    v_wait := bj.throttle_wait('signup:ip:' || host(p_ip));
    if v_wait is not null then
      return bj.refuse('BJ031', format('this address may sign up again in %s s', ceil(v_wait)), v_wait);
    end if;
    -- one signup at a time per address, so the count below cannot be raced
    perform pg_advisory_xact_lock(hashtextextended('signup:' || host(p_ip), 0));
    v_window := bj.setting('signup_ip_window_s')::numeric;
    select count(*), min(u.created_at) into v_recent, v_oldest from bj.users u
     where u.signup_ip = p_ip and u.created_at > clock_timestamp() - make_interval(secs => v_window);
    if v_recent >= bj.setting('signup_ip_max')::int then
      v_wait := greatest(extract(epoch from v_oldest + make_interval(secs => v_window) - clock_timestamp()),
                         bj.throttle_fail('signup:ip:' || host(p_ip), 1, v_window));
      return bj.refuse('BJ031', format('%s accounts from this address in the last %s s; again in %s s',
                                       v_recent, v_window, ceil(v_wait)), v_wait);
    end if;
  end if;
  begin
    insert into bj.users (username, balance, signup_ip) values (p_username, v_bonus, p_ip)
    returning * into v_user;
  exception when unique_violation then
    perform bj.raise('BJ009', p_username);
  end;
  insert into bj.credentials (user_id, password_hash)
  values (v_user.id, extensions.crypt(p_password, extensions.gen_salt('bf', bj.setting('bcrypt_cost')::int)));
  perform bj.post(nextval('bj.journal_seq'), 'signup_bonus', 'coin', 'house',
                  bj.cash_account(v_user.id), v_bonus, v_user.id);
  return jsonb_build_object('user_id', v_user.id, 'username', v_user.username,
                            'balance', v_user.balance) || bj.issue_token(v_user.id, v_user.username);
end $$;

-- Check a password with the same bcrypt work whether or not the user exists. A username or
-- an address with too many recent failures is refused before any hashing (BJ032, with
-- Retry-After); a failure counts against both and is returned, not raised, so that it commits.
-- A correct password clears the username's count (never the address's: one's own account
-- must not reset a guesser's).
create or replace function bj.login(p_username text, p_password text, p_ip inet default null)
returns jsonb
language plpgsql volatile as $$
declare
  v_user bj.users;
  v_hash text;
  v_user_key text := 'login:user:' || left(coalesce(p_username, ''), 64);
  v_ip_key text := 'login:ip:' || host(p_ip);
  v_window numeric;
  v_wait numeric;
begin
  v_wait := greatest(bj.throttle_wait(v_user_key), bj.throttle_wait(v_ip_key));
  if v_wait is not null then
    return bj.refuse('BJ032', format('refused for %s more seconds', ceil(v_wait)), v_wait);
  end if;
  select u.* into v_user from bj.users u where u.username = p_username;
  select c.password_hash into v_hash from bj.credentials c where c.user_id = v_user.id;
  -- a fresh salt of the same cost stands in for a missing user: the same bcrypt work; a
  -- password bcrypt would cut short can match nothing (and is refused before hashing)
  v_hash := coalesce(v_hash, extensions.gen_salt('bf', bj.setting('bcrypt_cost')::int));
  if p_password is null or octet_length(p_password) > 72
     or extensions.crypt(p_password, v_hash) is distinct from v_hash or v_user.id is null then
    v_window := bj.setting('login_window_s')::numeric;
    v_wait := bj.throttle_fail(v_user_key, bj.setting('login_max_failures_user')::int, v_window);
    if p_ip is not null then
      v_wait := greatest(v_wait, bj.throttle_fail(v_ip_key, bj.setting('login_max_failures_ip')::int, v_window));
    end if;
    return bj.refuse('BJ022', case when v_wait is not null
                                   then format('further attempts are refused for %s s', ceil(v_wait)) end);
  end if;
  if v_user.disabled_at is not null then
    perform bj.raise('BJ026');
  end if;
  delete from bj.throttle t where t.key = v_user_key;
  return bj.issue_token(v_user.id, v_user.username);
end $$;
drop function if exists bj.login(text, text);

-- Addresses that opened the maximum number of accounts within one window: for review.
create or replace view admin.flagged_ips as
select u.signup_ip as ip, count(*) as accounts, min(u.created_at) as first_signup,
       max(u.created_at) as last_signup, array_agg(u.username order by u.id) as usernames
  from bj.users u
 where u.signup_ip in (
         select w.signup_ip from bj.users w
          where (select count(*) from bj.users x
                  where x.signup_ip = w.signup_ip
                    and x.created_at between w.created_at
                        and w.created_at + make_interval(secs => bj.setting('signup_ip_window_s')::numeric))
                >= bj.setting('signup_ip_max')::int)
 group by u.signup_ip;
grant select on admin.flagged_ips to service_role;

---------------------------------------------------------------------------------------------
-- Scorched earth

-- The account that holds what wiped accounts held: disabled, never logs in. Shares moved to
-- it stay outstanding (prices do not move) and it settles like any account.
create or replace function bj.burn_user() returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  select u.id into v_id from bj.users u where u.username = '_burned';
  if not found then
    insert into bj.users (username, disabled_at) values ('_burned', clock_timestamp())
    returning id into v_id;
  end if;
  return v_id;
end $$;

-- Disable accounts and burn their cash, positions and collateral through compensating ledger
-- postings: nothing deleted or edited in the ledger, no share returned to the pool, open
-- orders cancelled, tokens refused from then on. An unknown name refuses the whole call.
create or replace function admin.wipe_users(usernames text[])
returns table (username text, cash_burned numeric, positions_burned int, orders_cancelled int)
language plpgsql security definer set search_path = '' as $$
declare
  v_burn bigint := bj.burn_user();
  v_journal bigint := nextval('bj.journal_seq');
  v_user bj.users;
  v_market bj.markets;
  v_pos bj.positions;
  v_coll bj.collateral;
  v_positions int;
  v_orders int;
begin
  if wipe_users.usernames is null or cardinality(wipe_users.usernames) = 0 then
    perform bj.raise('BJ021', 'name at least one user');
  end if;
  if '_burned' = any (wipe_users.usernames) then
    perform bj.raise('BJ021', 'the _burned account holds what wiped accounts held: it cannot be wiped');
  end if;
  -- every name must be a user: a typo must not wipe the others and commit as if done
  if exists (select 1 from unnest(wipe_users.usernames) n
              where not exists (select 1 from bj.users u where u.username = n)) then
    perform bj.raise('BJ013', (select string_agg(n, ', ' order by n) from unnest(wipe_users.usernames) n
                                where not exists (select 1 from bj.users u where u.username = n)));
  end if;
  -- lock order as everywhere: markets first (by id), then users (by id)
  perform 1 from bj.markets m
   where m.id in (select p.market_id from bj.positions p join bj.users u on u.id = p.user_id
                   where u.username = any (wipe_users.usernames) and p.shares <> 0
                  union
                  select c.market_id from bj.collateral c join bj.users u on u.id = c.user_id
                   where u.username = any (wipe_users.usernames) and c.amount <> 0
                  union
                  select o.market_id from bj.orders o join bj.users u on u.id = o.user_id
                   where u.username = any (wipe_users.usernames) and o.status = 'open')
   order by m.id for no key update;
  perform 1 from bj.users u where u.username = any (wipe_users.usernames) or u.id = v_burn
   order by u.id for no key update;

  for v_user in select * from bj.users u where u.username = any (wipe_users.usernames)
                   and u.id <> v_burn order by u.id loop
    -- their orders first: what resting ones lock comes back, to be burned with the rest
    v_orders := 0;
    for v_market in select * from bj.markets m
                     where m.id in (select o.market_id from bj.orders o
                                     where o.user_id = v_user.id and o.status = 'open')
                     order by m.id loop
      v_orders := v_orders + bj.cancel_orders_of(v_market, 'the account was wiped', v_user.id);
    end loop;
    select * into v_user from bj.users u where u.id = v_user.id;
    v_positions := 0;
    for v_pos in select * from bj.positions p where p.user_id = v_user.id and p.shares <> 0 loop
      perform bj.post(v_journal, 'burn', bj.share_asset(v_pos.market_id, v_pos.outcome),
                      bj.position_account(v_user.id, v_pos.market_id, v_pos.outcome),
                      bj.position_account(v_burn, v_pos.market_id, v_pos.outcome),
                      v_pos.shares, v_user.id, v_pos.market_id);
      insert into bj.positions as p (user_id, market_id, outcome, shares, cost_basis)
      values (v_burn, v_pos.market_id, v_pos.outcome, v_pos.shares, v_pos.cost_basis)
      on conflict (user_id, market_id, outcome) do update
         set shares = p.shares + excluded.shares, cost_basis = p.cost_basis + excluded.cost_basis;
      update bj.positions p set shares = 0, cost_basis = 0
       where p.user_id = v_user.id and p.market_id = v_pos.market_id and p.outcome = v_pos.outcome;
      v_positions := v_positions + 1;
    end loop;
    for v_coll in select * from bj.collateral c where c.user_id = v_user.id and c.amount <> 0 loop
      perform bj.post(v_journal, 'burn', 'coin', bj.collateral_account(v_user.id, v_coll.market_id),
                      bj.collateral_account(v_burn, v_coll.market_id), v_coll.amount, v_user.id, v_coll.market_id);
      insert into bj.collateral as c (user_id, market_id, amount) values (v_burn, v_coll.market_id, v_coll.amount)
      on conflict (user_id, market_id) do update set amount = c.amount + excluded.amount;
      update bj.collateral c set amount = 0 where c.user_id = v_user.id and c.market_id = v_coll.market_id;
    end loop;
    perform bj.post(v_journal, 'burn', 'coin', bj.cash_account(v_user.id), 'burn', v_user.balance, v_user.id);
    update bj.users u set balance = 0, disabled_at = coalesce(u.disabled_at, clock_timestamp()) where u.id = v_user.id;
    username := v_user.username;
    cash_burned := v_user.balance;
    positions_burned := v_positions;
    orders_cancelled := v_orders;
    return next;
  end loop;
end $$;
grant execute on function admin.wipe_users(text[]) to service_role;

---------------------------------------------------------------------------------------------
-- Calls that hash a password (bcrypt is slow on purpose) and how many of them the HTTP layer
-- runs at once: a flood of logins then waits its turn instead of taking every core and every
-- pooled connection from the traders. The HTTP layer reads this at start-up.
create or replace view bj.call_limits as
select f.name as function, s.value::int as max_concurrent
  from (values ('signup'), ('login')) f(name)
  join bj.settings s on s.key = 'password_hash_concurrency';
grant select on bj.call_limits to authenticator;
