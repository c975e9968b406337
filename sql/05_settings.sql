-- Exchange-wide settings: documented defaults, read by the functions they govern, changed by
-- a DBA with admin.configure(key, value).

insert into bj.settings (key, value, description) values
  ('signup_bonus',        '1000',   'coins credited from the house to every new account'),
  ('trade_cooldown_ms',   '100',    'minimum time between two trades of one trader (0: none)'),
  ('signup_ip_window_s',  '15',     'window of the per-address signup limit, in seconds'),
  ('signup_ip_max',       '3',      'accounts one address may open within the window'),
  ('default_fee_rate',    '0.0167', 'fee rate of a market created without one'),
  ('token_ttl_s',         '86400',  'lifetime of a login token, in seconds'),
  ('max_cascade',         '20',     'conditional orders one trade may fire, all levels together'),
  ('min_password_length', '8',      'shortest password signup accepts'),
  ('bcrypt_cost',         '10',     'work factor of new password hashes (4 to 15)'),
  ('login_window_s',      '900',    'window in which failed logins are counted, in seconds'),
  ('login_max_failures_user', '10', 'failed logins for one username within the window before it is refused for a while'),
  ('login_max_failures_ip', '20',   'failed logins from one address within the window before it is refused for a while'),
  ('throttle_backoff_s',  '1',      'first refusal once a login or signup limit is reached, in seconds; doubles with every further attempt'),
  ('throttle_backoff_max_s', '900', 'longest refusal of the login and signup throttle, in seconds'),
  ('password_hash_concurrency', '1', 'password checks (login, signup) the HTTP layer runs at once; the others wait their turn'),
  ('book_changes_keep_s', '86400',  'how long changes of the books are kept for streams resuming from a cursor, in seconds'),
  ('bot_cooldown_ms',     '1000',   'shortest time between two runs of one bot (a bot may set a longer one)'),
  ('bots_per_owner',      '10',     'bots one trader may have (deleted ones do not count)'),
  ('idempotency_keep_h',  '48',     'how long a trade''s idempotency key and receipt are kept, in hours (at least 24): a retry within it replays the trade, after it trades again; admin.prune_idempotency forgets the older ones')
on conflict (key) do update set description = excluded.description;

-- A setting's value (text); every key read here exists, so a typo fails loudly.
create or replace function bj.setting(p_key text) returns text
language plpgsql stable as $$
declare
  v_value text;
begin
  select s.value into v_value from bj.settings s where s.key = p_key;
  if not found then
    perform bj.raise('BJ027', p_key);
  end if;
  return v_value;
end $$;

-- Change a setting. Every setting is a finite non-negative number; fee rates stay below 0.5,
-- the bcrypt cost between 4 and 15, limits and counts are whole and at least 1.
create or replace function admin.configure(key text, value text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_number numeric;
begin
  if not exists (select 1 from bj.settings s where s.key = configure.key) then
    perform bj.raise('BJ027', configure.key);
  end if;
  begin
    v_number := configure.value::numeric;
  exception when others then
    perform bj.raise('BJ021', format('%s must be a number', configure.key));
  end;
  if v_number < 0 or v_number = 'NaN' or v_number = 'Infinity'
     or (configure.key = 'default_fee_rate' and v_number >= 0.5)
     or (configure.key = 'bcrypt_cost' and v_number not in (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
     or (configure.key = 'idempotency_keep_h' and v_number < 24)
     or (configure.key in ('password_hash_concurrency', 'login_max_failures_user', 'login_max_failures_ip')
         and (v_number < 1 or v_number <> trunc(v_number))) then
    perform bj.raise('BJ021', format('%s is out of range', configure.key));
  end if;
  update bj.settings s set value = configure.value where s.key = configure.key;
  return jsonb_build_object('key', configure.key, 'value', configure.value);
end $$;
grant execute on function admin.configure(text, text) to service_role;

create or replace function admin.settings() returns table (key text, value text, description text)
language sql stable security definer set search_path = ''
begin atomic
  select s.key, s.value, s.description from bj.settings s order by s.key;
end;
grant execute on function admin.settings() to service_role;
