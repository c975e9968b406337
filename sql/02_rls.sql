-- Row-level security and table privileges. RLS is enabled and forced on every table (in the
-- migrations), so the owner's own functions pass through a policy too. Client roles write no
-- table; they read public market data and only their own rows. Policies read as sentences.
--
-- search_path: every SECURITY DEFINER function (the api and admin entry points) pins it to ''
-- and names everything with its schema. The private bj functions they call run inside that
-- setting and carry no SET clause of their own: clients cannot call them, and a SET clause
-- costs a save and restore of the setting on every call (16 % of a trade, measured). Bodies
-- written in standard SQL (RETURN, BEGIN ATOMIC) are bound when created and need none either.

-- The trader id of the verified request claims (set by the HTTP layer), or null.
create or replace function auth.uid() returns bigint
language sql stable
return nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::bigint;
grant execute on function auth.uid() to anon, authenticated;


do $$
declare
  t text;
begin
  for t in select c.relname from pg_class c
            where c.relnamespace = 'bj'::regnamespace and c.relkind = 'r' loop
    execute format('drop policy if exists "the exchange''s functions manage %s" on bj.%I', t, t);
    execute format('create policy "the exchange''s functions manage %s" on bj.%I
                      as permissive for all to betjee_owner using (true) with check (true)', t, t);
    execute format('revoke all on bj.%I from public, anon, authenticated, authenticator, analyst, service_role', t);
  end loop;
end $$;

grant usage on schema bj to anon, authenticated;

grant select on bj.markets to anon, authenticated;
drop policy if exists "markets are public" on bj.markets;
create policy "markets are public" on bj.markets for select to anon, authenticated using (true);

grant select (id, username, created_at) on bj.users to anon, authenticated;
drop policy if exists "trader profiles are public" on bj.users;
create policy "trader profiles are public" on bj.users for select to anon, authenticated using (true);

-- A trader reads their own rows of every table keyed by trader, and nothing of anyone else's.
do $$
declare
  r record;
begin
  for r in select * from (values ('positions', 'positions'), ('orders', 'orders'), ('trades', 'trades'),
                                 ('ledger', 'ledger postings'), ('collateral', 'collateral')) t(tbl, noun) loop
    execute format('grant select on bj.%I to authenticated', r.tbl);
    execute format('drop policy if exists %I on bj.%I', 'traders read their own ' || r.noun, r.tbl);
    execute format('create policy %I on bj.%I for select to authenticated using (user_id = auth.uid())',
                   'traders read their own ' || r.noun, r.tbl);
  end loop;
end $$;
