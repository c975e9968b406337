"""Random sequences of limit, market, back/lay and batched orders, trades and cancels by three
traders on a binary book market, a binary LMSR market (with and without a maker fee) and a
3-outcome book market, compared to the last digit with the independent model of the book and
its router in tests/book_model.py (architecture.md section 13). After every command: its answer
(the order's status, filled, remaining, cancelled and escrow, its book fills' prices and shares
in order, the market maker's shares; a trade's receipt) or its refusal code; every trade row it
wrote (taker and maker: order, trader, outcome, side, how, shares, price, amount, fee, total);
every trader's balance, positions and collateral, every order of the market (state and
escrow), the market's quantities, pool, pairs and a binary book's last prices. Not compared:
cost bases, reasons' wording, the market maker's average price in an order's fills.
Invariants after every example."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from psycopg.types.json import set_json_loads

from tests.book_model import BookMarket, Fill, Order, Refused, Result
from tests.conftest import deterministic, rpc_sql, unique

D = Decimal
ZERO = D(0)
CENT = D("0.01")

# name: outcomes, pricing, liquidity (b), fee_rate, maker_fee_rate
KINDS = {
    "book2": (("YES", "NO"), "book", "100", "0.0167", "0.01"),
    "lmsr2": (("YES", "NO"), "lmsr", "100", "0.0167", "0"),
    "lmsr2m": (("YES", "NO"), "lmsr", "100", "0.0167", "0.01"),
    "book3": (("A", "B", "C"), "book", "100", "0.0167", "0"),
}
ODDS = [D(x) for x in ("1.5", "1.91", "2", "2.5", "3", "3.35", "4.1", "7.6")]
# no shrinking: a failure names the command and the sequence it ran in, and each replay of a
# sequence costs a dozen transactions (the @example()s below are the minimal cases)
SETTINGS = settings(max_examples=40, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def quantities(units: int = 30) -> st.SearchStrategy[Decimal]:
    """Positive quantities with 0, 2, 3 or 6 decimals, now and then one too big to afford."""
    def scaled(places: int) -> st.SearchStrategy[Decimal]:
        return st.integers(1, units * 10 ** places).map(lambda n: D(n).scaleb(-places))
    usual = st.sampled_from([0, 2, 3, 6]).flatmap(scaled)
    return st.integers(0, 15).flatmap(
        lambda k: st.sampled_from([D(2500), D("0.000001")]) if k == 0 else usual)


who = st.integers(0, 2)
outcome = st.integers(0, 2)             # taken modulo the market's outcomes
sides = st.sampled_from(["buy", "sell"])
cents = st.integers(30, 70)
limit = st.tuples(st.just("limit"), who, outcome, sides, cents, quantities(),
                  st.sampled_from(["gtc", "gtc", "gtc", "ioc", "fok"]),
                  st.integers(0, 5).map(lambda k: k == 0))
market = st.tuples(st.just("market"), who, outcome, sides, quantities(),
                   st.sampled_from(["ioc", "fok"]))
trade = st.tuples(st.just("trade"), who, outcome, sides, quantities())
# cancel the order placed ref-th (modulo those placed), by its owner or by who
cancel = st.tuples(st.just("cancel"), who, st.integers(0, 30), st.integers(0, 4).map(bool))
bet = st.tuples(st.just("bet"), who, outcome, st.sampled_from(["back", "lay"]),
                st.sampled_from(ODDS), quantities(10).filter(lambda s: s >= CENT))
batch = st.tuples(st.just("batch"), who, st.lists(st.one_of(limit, bet, market), min_size=2,
                                                   max_size=3).map(tuple))
# now and then a limit order that self-trade prevention stops (stp cancel_newest)
newest = limit.map(lambda cmd: (*cmd, "cancel_newest"))
command = st.one_of(limit, limit, limit, limit, market, trade, cancel, bet, batch, newest)


class Run:
    """One market, three traders, the model beside them, and the comparisons."""

    def __init__(self, db: psycopg.Connection, kind: str) -> None:
        outcomes, pricing, b, fee, maker_fee = KINDS[kind]
        set_json_loads(lambda s: json.loads(s, parse_float=Decimal), db)
        self.db, self.outcomes = db, outcomes
        self.code = unique("bk")
        db.execute("select admin.create_market(code => %s, title => %s, outcomes => %s,"
                   " liquidity => %s::numeric, fee_rate => %s::numeric, pricing => %s,"
                   " maker_fee_rate => %s::numeric)",
                   [self.code, self.code, list(outcomes), b, fee, pricing, maker_fee])
        self.market_id = db.execute("select id from bj.markets where code = %s",
                                    [self.code]).fetchone()["id"]
        self.users = [db.execute("select (bj.signup(%s, 'password123', null) ->> 'user_id')"
                                 "::bigint as id", [unique("bk")]).fetchone()["id"]
                      for _ in range(3)]
        self.model = BookMarket(len(outcomes), pricing, D(b), D(fee), D(maker_fee))
        for user in self.users:
            self.model.add_user(user)
        self.db_id: dict[int, int] = {}        # the model's order id -> the database's
        self.placed: list[int] = []            # database ids of the orders placed, in order
        self.last_trade = self.max_trade()

    def max_trade(self) -> int:
        return self.db.execute("select coalesce(max(id), 0) as id from bj.trades").fetchone()["id"]

    def call(self, user: int, fn: str, **args):
        try:
            with self.db.transaction():
                return rpc_sql(self.db, user, fn, **args)
        except psycopg.Error as exc:
            return Refused(exc.sqlstate)

    # ---- commands -----------------------------------------------------------------------
    def order_args(self, cmd: tuple) -> tuple[dict, dict]:
        """(the api's arguments, the model's) of a limit, market or bet command."""
        j = cmd[2] % len(self.outcomes)
        api = {"market": self.code, "outcome": self.outcomes[j]}
        if cmd[0] == "limit":
            _, _, _, side, price, shares, tif, post_only, *stp = cmd
            api.update(side=side, shares=shares, price=D(price) * CENT, time_in_force=tif,
                       post_only=post_only)
            mod = {"j": j, "side": side, "shares": shares, "price": D(price) * CENT, "tif": tif,
                   "post_only": post_only}
            if stp:
                api["stp"] = mod["stp"] = stp[0]
        elif cmd[0] == "market":
            _, _, _, side, shares, tif = cmd
            api.update(side=side, kind="market", shares=shares, time_in_force=tif)
            mod = {"j": j, "side": side, "kind": "market", "shares": shares, "tif": tif}
        else:
            _, _, _, side, odds, stake = cmd
            api.update(side=side, odds=odds, stake=stake)
            mod = {"j": j, "side": side, "odds": odds, "stake": stake}
        return api, mod

    def step(self, cmd: tuple) -> None:
        user = self.users[cmd[1]]
        what = cmd[0]
        if what in ("limit", "market", "bet"):
            api, mod = self.order_args(cmd)
            expected = self.attempt(lambda: self.model.place_order(user, **mod))
            got = self.call(user, "place_order", **api)
            self.compare_order(cmd, expected, got)
            self.compare_trades(cmd, [] if isinstance(expected, Refused) else [expected])
        elif what == "trade":
            _, _, j, side, shares = cmd
            j %= len(self.outcomes)
            expected = self.attempt(lambda: self.model.trade(user, j, side, shares))
            got = self.call(user, "trade", market=self.code, outcome=self.outcomes[j],
                            side=side, shares=shares)
            self.same_refusal(cmd, expected, got)
            if isinstance(expected, Result):
                for key in ("shares", "amount", "fee", "total"):
                    assert got[key] == getattr(expected, key), (cmd, key, got, expected)
                assert got["balance"] == self.model.cash[user], (cmd, got)
                assert got["position"] == self.model.pos[user][j], (cmd, got)
            self.compare_trades(cmd, [] if isinstance(expected, Refused) else [expected])
        elif what == "cancel":
            target = self.placed[cmd[2] % len(self.placed)] if self.placed else 10 ** 12
            back = {v: k for k, v in self.db_id.items()}
            if cmd[3] and target in back:
                user = self.model.orders[back[target]].user
            expected = self.attempt(lambda: self.model.cancel(user, back.get(target)))
            got = self.call(user, "cancel_order", order_id=target)
            self.same_refusal(cmd, expected, got)
            if isinstance(expected, Order):
                assert got["status"] == "cancelled" and got["order_id"] == target, (cmd, got)
            self.compare_trades(cmd, [])
        else:
            subs = cmd[2]
            argss = [self.order_args((sub[0], cmd[1], *sub[2:])) for sub in subs]
            expected = [self.attempt(lambda mod=mod: self.model.place_order(user, **mod))
                        for _, mod in argss]
            got = self.call(user, "place_orders", orders=[self.jsonable(a) for a, _ in argss])
            assert isinstance(got, list) and len(got) == len(subs), (cmd, got)
            for sub, exp, one in zip(subs, expected, got):
                one = Refused(one["code"]) if "code" in one else one
                self.compare_order(sub, exp, one)
            self.compare_trades(cmd, [e for e in expected if not isinstance(e, Refused)])
        self.compare_state(cmd)

    @staticmethod
    def jsonable(args: dict) -> dict:
        """Decimals as JSON numbers: a float's shortest repr spells these few digits exactly."""
        return {k: float(v) if isinstance(v, Decimal) else v for k, v in args.items()}

    @staticmethod
    def attempt(fn):
        try:
            return fn()
        except Refused as exc:
            return exc

    @staticmethod
    def same_refusal(cmd, expected, got) -> None:
        if isinstance(expected, Refused) or isinstance(got, Refused):
            assert isinstance(expected, Refused) and isinstance(got, Refused), \
                f"{cmd}: the model says {expected}, the database {got}"
            assert expected.code == got.code, f"{cmd}: the model refuses {expected.code}, " \
                                              f"the database {got.code}"

    def compare_order(self, cmd, expected, got) -> None:
        self.same_refusal(cmd, expected, got)
        if isinstance(expected, Refused):
            return
        o = expected.order
        self.db_id[o.id] = got["order_id"]
        self.placed.append(got["order_id"])
        state = (o.status, o.filled, o.remaining, o.cancelled, o.locked_cash, o.locked_shares)
        answer = (got["status"], got["filled"], got["remaining"], got["cancelled"],
                  got["locked"]["cash"], got["locked"]["shares"])
        assert answer == state, f"{cmd}: order {answer} != model {state}"
        book = [(f.price, f.shares) for f in expected.fills if f.how != "amm"]
        got_book = [(f["price"], f["shares"]) for f in got["fills"] if f["counterparty"] == "book"]
        assert got_book == book, f"{cmd}: book fills {got_book} != model {book}"
        amm = [f.shares for f in expected.fills if f.how == "amm"]
        got_amm = [f["shares"] for f in got["fills"] if f["counterparty"] == "amm"]
        assert got_amm == amm, f"{cmd}: market maker fills {got_amm} != model {amm}"

    def compare_trades(self, cmd, results: list[Result]) -> None:
        """The trades the command wrote: each taker row, and its maker's row, to the digit."""
        rows = self.db.execute(
            "select t.user_id, t.outcome - 1 as outcome, t.side, t.shares, t.price, t.amount,"
            "       t.fee, t.total, t.how, t.order_id, m.order_id as m_order,"
            "       m.user_id as m_user, m.outcome - 1 as m_outcome, m.side as m_side,"
            "       m.amount as m_amount, m.fee as m_fee, m.total as m_total"
            "  from bj.trades t left join bj.trades m on m.id = t.other_trade_id"
            " where t.id > %s and t.market_id = %s and t.role = 'taker' order by t.id",
            [self.last_trade, self.market_id]).fetchall()
        makers = self.db.execute("select count(*) as n from bj.trades where id > %s and"
                                 " market_id = %s and role = 'maker'",
                                 [self.last_trade, self.market_id]).fetchone()["n"]
        self.last_trade = self.max_trade()
        got = sorted((self.row(r) for r in rows), key=repr)
        want = sorted((self.fill(f) for res in results for f in res.fills), key=repr)
        assert got == want, f"{cmd}: trades\n  database {got}\n  model    {want}"
        assert makers == sum(f.how != "amm" for res in results for f in res.fills), cmd

    @staticmethod
    def row(r: dict) -> tuple:
        taker = (r["order_id"], r["user_id"], r["outcome"], r["side"], r["how"], r["shares"],
                 None if r["how"] == "amm" else r["price"], r["amount"], r["fee"], r["total"])
        maker = (r["m_order"], r["m_user"], r["m_outcome"], r["m_side"], r["m_amount"],
                 r["m_fee"], r["m_total"])
        return taker, maker

    def fill(self, f: Fill) -> tuple:
        taker = (self.db_id.get(f.order), f.taker, f.outcome, f.side, f.how, f.shares, f.price,
                 f.amount, f.fee, f.total)
        maker = (self.db_id.get(f.maker), f.maker_user, f.maker_outcome, f.maker_side,
                 f.maker_amount, f.maker_fee, f.maker_total)
        return taker, maker

    def compare_state(self, cmd) -> None:
        """Every trader's balance, positions (outside escrow) and collateral, every order of
        the market, the market's quantities, pool, pairs and (binary book) last prices."""
        m = self.model
        market = self.db.execute("select q, pool, pairs, last_prices from bj.markets where id = %s",
                                 [self.market_id]).fetchone()
        mine = (m.q, m.pool, m.pairs)
        theirs = ([D(x) for x in market["q"]], market["pool"], market["pairs"])
        assert theirs == mine, f"{cmd}: market (q, pool, pairs) {theirs} != model {mine}"
        if m.pricing == "book" and m.n == 2:
            last = market["last_prices"] and [D(x) for x in market["last_prices"]]
            assert last == m.last_prices, f"{cmd}: last prices {last} != model {m.last_prices}"
        for user in self.users:
            balance = self.db.execute("select balance from bj.users where id = %s",
                                      [user]).fetchone()["balance"]
            assert balance == m.cash[user], f"{cmd}: balance of {user} {balance} != {m.cash[user]}"
            pos = [ZERO] * m.n
            for r in self.db.execute("select outcome - 1 as j, shares from bj.positions"
                                     " where user_id = %s and market_id = %s",
                                     [user, self.market_id]).fetchall():
                pos[r["j"]] = r["shares"]
            assert pos == m.pos[user], f"{cmd}: position of {user} {pos} != {m.pos[user]}"
            coll = self.db.execute("select coalesce(sum(amount), 0) as a from bj.collateral"
                                   " where user_id = %s and market_id = %s",
                                   [user, self.market_id]).fetchone()["a"]
            assert coll == m.coll[user], f"{cmd}: collateral of {user} {coll} != {m.coll[user]}"
        rows = self.db.execute(
            "select id, user_id, outcome - 1 as j, side, kind, price, shares, filled, cancelled,"
            " remaining, status, locked_cash, locked_shares from bj.orders where market_id = %s"
            " order by id", [self.market_id]).fetchall()
        back = {v: k for k, v in self.db_id.items()}
        assert [back.get(r["id"]) for r in rows] == sorted(m.orders), \
            f"{cmd}: orders {[r['id'] for r in rows]} != model {sorted(m.orders)}"
        for r in rows:
            o = m.orders[back[r["id"]]]
            mine = (o.user, o.outcome, o.side, o.kind, o.shares, o.filled, o.cancelled,
                    o.remaining, o.status, o.locked_cash, o.locked_shares)
            theirs = (r["user_id"], r["j"], r["side"], r["kind"], r["shares"], r["filled"],
                      r["cancelled"], r["remaining"], r["status"], r["locked_cash"],
                      r["locked_shares"])
            assert theirs == mine, f"{cmd}: order {r['id']} {theirs} != model {mine}"
            if o.kind == "limit":
                assert r["price"] == o.price, f"{cmd}: order {r['id']} price {r['price']}"


def play(db: psycopg.Connection, kind: str, commands: list[tuple]) -> None:
    run = Run(db, kind)
    for i, cmd in enumerate(commands):
        try:
            run.step(cmd)
        except AssertionError as exc:
            exc.add_note(f"{kind} market, command {i} of {commands}")
            raise
    assert db.execute("select * from admin.check_invariants()").fetchall() == []


Y, N = 0, 1                             # YES and NO in a binary market


@deterministic
@SETTINGS
@given(kind=st.sampled_from(sorted(KINDS)), commands=st.lists(command, min_size=1, max_size=12))
# the cases section 13 singles out, each the smallest sequence that shows it
@example(kind="lmsr2", commands=[("limit", 1, Y, "sell", 55, D(5), "gtc", False),
                                 ("limit", 2, Y, "buy", 60, D(40), "gtc", False)]
         ).via("an ask resting exactly where the maker's price gets to: the maker up to 0.55"
               " (20.067069 shares), the ask's 5, the maker on to the limit; one move, one price")
@example(kind="lmsr2", commands=[("limit", 1, Y, "sell", 50, D(3), "gtc", False),
                                 ("limit", 2, Y, "buy", 52, D(5), "gtc", False)]
         ).via("a tie at the maker's price: the resting ask at 0.50 fills first")
@example(kind="lmsr2m", commands=[("limit", 1, Y, "buy", 45, D(5), "gtc", False),
                                  ("limit", 2, Y, "sell", 40, D(30), "gtc", False)]
         ).via("the same on the sale side, with a maker fee")
@example(kind="lmsr2", commands=[("limit", 1, N, "buy", 45, D(5), "gtc", False),
                                 ("trade", 2, Y, "buy", D(30))]
         ).via("api.trade routed between the maker and a NO bid counted as a YES ask at 0.55")
@example(kind="book2", commands=[("limit", 0, N, "buy", 40, D(3), "gtc", False),
                                 ("limit", 1, Y, "buy", 60, D(2), "gtc", False)]
         ).via("a mint: a YES buy and a NO bid at 0.40 pay for 2 new pairs")
@example(kind="book2", commands=[("limit", 0, N, "buy", 40, D(3), "gtc", False),
                                 ("limit", 1, Y, "buy", 60, D(3), "gtc", False),
                                 ("limit", 0, N, "sell", 45, D(2), "gtc", False),
                                 ("limit", 1, Y, "sell", 50, D(2), "gtc", False)]
         ).via("a merge: a YES sale and a NO ask at 0.45 return 2 of the 3 pairs")
@example(kind="book2", commands=[("limit", 0, N, "sell", 40, D(2), "gtc", False),
                                 ("limit", 1, Y, "sell", 50, D(3), "gtc", False)]
         ).via("a merge of two shorts: pairs and the pool go to -2 (what section 13 says)")
@example(kind="book2", commands=[("limit", 0, Y, "sell", 50, D(1), "gtc", False),
                                 ("limit", 1, Y, "buy", 50, D(2), "fok", False),
                                 ("market", 1, Y, "buy", D(2), "fok")]
         ).via("fill or kill refused (BJ015), nothing changes")
@example(kind="book2", commands=[("limit", 0, Y, "sell", 50, D(1), "gtc", False),
                                 ("limit", 1, Y, "buy", 55, D(1), "gtc", True),
                                 ("limit", 1, Y, "buy", 50, D(1), "ioc", True)]
         ).via("post-only refused (BJ014) when it would take, and when it cannot rest (BJ021)")
@example(kind="lmsr2m", commands=[("limit", 1, Y, "buy", 55, D(1), "gtc", True),
                                  ("limit", 1, Y, "buy", 49, D(1), "gtc", True)]
         ).via("post-only against the market maker: refused above its price, rests below")
@example(kind="book2", commands=[("limit", 0, Y, "buy", 33, D(3), "gtc", False),
                                 ("limit", 1, Y, "sell", 33, D(1), "gtc", False),
                                 ("limit", 2, Y, "sell", 30, D(2), "gtc", False)]
         ).via("a bid at 0.33 filled 1, then 2 shares: the maker pays 0.33, then 0.66")
@example(kind="book2", commands=[("limit", 0, Y, "buy", 33, D(3), "gtc", False),
                                 ("limit", 1, Y, "sell", 33, D("1.000001"), "gtc", False),
                                 ("market", 2, Y, "sell", D("1.999999"), "ioc")]
         ).via("cumulative rounding: the maker pays 0.330001 then 0.659999, its fee 0.003301 then"
               " 0.006599; the takers receive floor6 of their own fills")
@example(kind="book2", commands=[("limit", 1, Y, "sell", 30, D("1.000001"), "gtc", False),
                                 ("limit", 0, Y, "buy", 33, D("3.000003"), "gtc", False),
                                 ("limit", 2, Y, "sell", 33, D("2.000002"), "gtc", False)]
         ).via("a bid that took first then rests: rounded over its whole filled quantity")
@example(kind="book2", commands=[("limit", 1, Y, "sell", 40, D(2), "gtc", False),
                                 ("limit", 0, Y, "buy", 40, D(2), "gtc", False),
                                 ("limit", 0, Y, "sell", 60, D(5), "gtc", False),
                                 ("limit", 2, Y, "buy", 60, D(1), "gtc", False),
                                 ("limit", 2, Y, "buy", 60, D(2), "gtc", False),
                                 ("cancel", 0, 2, True)]
         ).via("an ask partly held: its shares are sold first, then the short's coins")
@example(kind="book2", commands=[("bet", 0, Y, "back", D(3), D(1)),
                                 ("bet", 1, Y, "lay", D(3), D(1)),
                                 ("bet", 2, Y, "lay", D("3.35"), D(2)),
                                 ("bet", 1, N, "back", D("1.91"), D("0.155038"))]
         ).via("back and lay: 3 at 0.33, 3 at 0.34, 6.7 at 0.30 meeting the back")
@example(kind="book2", commands=[("limit", 1, Y, "sell", 45, D(2), "gtc", False),
                                 ("batch", 0, (("limit", 0, Y, "buy", 50, D(3), "gtc", False),
                                               ("bet", 0, N, "back", D(2), D(1)),
                                               ("limit", 0, Y, "buy", 100, D(1), "gtc", False)))]
         ).via("a batch: a fill, a bet, a refusal (price 1.00) in its own subtransaction")
@example(kind="book3", commands=[("limit", 0, 0, "buy", 40, D(2), "gtc", False),
                                 ("limit", 1, 1, "sell", 50, D(2), "gtc", False),
                                 ("limit", 2, 0, "sell", 35, D(3), "gtc", False),
                                 ("market", 0, 1, "buy", D(3), "ioc"),
                                 ("trade", 1, 0, "buy", D(5))]
         ).via("three outcomes: direct fills only")
@example(kind="book2", commands=[("limit", 0, Y, "sell", 55, D(2), "gtc", False),
                                 ("limit", 1, Y, "sell", 50, D(1), "gtc", False),
                                 ("limit", 0, Y, "buy", 60, D(3), "gtc", False, "cancel_newest")]
         ).via("stp cancel_newest: the buy takes the other trader's ask, then stops at its own")
@example(kind="book2", commands=[("market", 0, Y, "buy", D(1), "ioc"),
                                 ("limit", 1, Y, "buy", 30, D(1), "gtc", False),
                                 ("market", 0, Y, "buy", D(1), "ioc"),
                                 ("limit", 2, N, "buy", 60, D(1), "gtc", False),
                                 ("trade", 0, Y, "buy", D(3))]
         ).via("no liquidity: BJ016 on an empty book, a cancelled market order, a partial trade")
# self-trade prevention: the own orders the taker reaches are cancelled, no others
@example(kind="book2", commands=[("limit", 0, Y, "sell", 55, D(2), "gtc", False),
                                 ("limit", 1, Y, "sell", 56, D(2), "gtc", False),
                                 ("limit", 0, Y, "buy", 60, D(3), "gtc", False)]
         ).via("self-trade prevention cancels the trader's own ask at 0.55 on the way")
@example(kind="book2", commands=[("limit", 0, Y, "buy", 30, D(2), "gtc", False),
                                 ("limit", 0, Y, "sell", 60, D(1), "gtc", False)]
         ).via("an ask at 0.60 does not meet its trader's bid at 0.30: nothing to cancel")
@example(kind="book2", commands=[("limit", 0, Y, "buy", 30, D(2), "gtc", False),
                                 ("limit", 0, Y, "sell", 60, D(1), "gtc", False, "cancel_newest")]
         ).via("nor does it stop the ask (stp cancel_newest): it rests")
@example(kind="lmsr2", commands=[("limit", 0, Y, "sell", 70, D(2), "gtc", False),
                                 ("market", 0, Y, "buy", D(1), "ioc")]
         ).via("a buy of 1 the maker fills at ~0.5 never reaches its trader's ask at 0.70")
# what the database gets wrong (last: Hypothesis runs the @example()s top down):
# a cancelled ask whose escrowed shares come back to a short position leaves the collateral
# that short no longer needs locked
@example(kind="lmsr2", commands=[("trade", 0, Y, "buy", D(2)),
                                 ("limit", 0, Y, "sell", 90, D(2), "gtc", False),
                                 ("trade", 0, Y, "sell", D(1)),
                                 ("cancel", 0, 0, True)]
         ).via("cancelling an ask gives back 2 shares to a position of -1: no short is left")
def test_book_matches_the_independent_model(db, kind, commands):
    play(db, kind, commands)
