select id, version, changed_xid from bj.markets where false;
select 1 / (count(*) = 0)::int from pg_class where relnamespace = 'bj'::regnamespace and relname = 'market_events';
