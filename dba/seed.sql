-- The demo markets: one binary market per JEE shift and one multi-outcome market over all ten.
-- Safe to run again: existing markets are left alone.
select admin.create_market(s, format('Was shift %s the hardest?', s))
  from unnest(array['21s1', '21s2', '22s1', '22s2', '23s1', '23s2', '24s1', '24s2', '28s1', '28s2']) s
 where not exists (select 1 from admin.market_summary(s));

select admin.create_market('hardest-shift', 'Which JEE shift was the hardest?',
         array['21s1', '21s2', '22s1', '22s2', '23s1', '23s2', '24s1', '24s2', '28s1', '28s2'])
 where not exists (select 1 from admin.market_summary('hardest-shift'));
