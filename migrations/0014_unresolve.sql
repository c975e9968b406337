-- Undoing a resolution: what each settlement did (so that it can be found and reversed, and who
-- did it and why), and what a trader owes where a reversal met a payout already spent.
-- depends: 0013_idempotency_retention

set role betjee_owner;

-- One row per resolution, void and unresolution: the journal that posted it, the login that ran
-- it, and the reason given (an unresolution must give one).
create table bj.settlement_log (
  id bigint generated always as identity primary key,
  market_id bigint not null,
  action text not null check (action in ('resolve', 'void', 'unresolve')),
  journal bigint,
  actor text not null,
  reason text,
  detail jsonb not null default '{}',
  at timestamptz not null default clock_timestamp()
);
create index settlement_log_market on bj.settlement_log (market_id, id);

-- The settlements made before this log: the journal that paid them out (their last).
insert into bj.settlement_log (market_id, action, journal, actor, reason, at)
select m.id, case m.status when 'resolved' then 'resolve' else 'void' end,
       (select max(l.journal) from bj.ledger l
         where l.market_id = m.id and l.kind in ('payout', 'settle', 'void')),
       'unknown', null, coalesce(m.settled_at, clock_timestamp())
  from bj.markets m where m.status in ('resolved', 'voided')
 order by m.settled_at, m.id;
alter table bj.settlement_log enable row level security;
alter table bj.settlement_log force row level security;

-- What a trader owes: taken back by an unresolution beyond the balance they had, carried by the
-- house until collected (admin.collect_debts).
create table bj.debts (
  id bigint generated always as identity primary key,
  market_id bigint not null,
  user_id bigint not null,
  amount bj.money6 not null check (amount > 0),
  repaid bj.money6 not null default 0 check (repaid >= 0 and repaid <= amount),
  at timestamptz not null default clock_timestamp()
);
create index debts_outstanding on bj.debts (user_id) where repaid < amount;
alter table bj.debts enable row level security;
alter table bj.debts force row level security;

reset role;
