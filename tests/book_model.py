"""An independent model of the order book and its router, written from docs/architecture.md
section 13 (and DESIGN.md "Order book"), in Python decimals: resting limit orders in
price-time priority with their escrow, direct fills, binary mint and merge through the
complement's price, the route between the book and the LMSR market maker (the maker only while
its price is better than the best resting order's, ties to the book, its part priced once as one
move), the taker's and the makers' (cumulative) rounding and fees, self-trade prevention, time in
force, post-only, shorts and their collateral, and the betting form (back/lay at decimal odds).

Every command runs on a copy of the state, which replaces the state only when the command is not
refused: a refusal changes nothing. What rounding leaves over goes to the fees account, which the
model does not keep (admin.check_invariants() checks that every asset balances).

Where section 13 is silent, the model reads it as follows (the database answers the same):
- a maker is rounded over its order's whole filled quantity F, taking fills included, and its
  escrow pays its fills: a bid's escrow is what it locked less what it paid, and what is left
  when it closes comes back;
- an ask's fill delivers its escrowed shares first, then the short part;
- positions are the shares held outside escrow, and collateral is taken on those; a sale of
  shares that sit in an ask's escrow is a short;
- a merge needs no pairs: two shorts merging take the pairs and the pool below 0;
- refusals: BJ016 for api.trade that fills nothing and for a market order on a book market with
  no resting order at all (with resting orders elsewhere it is cancelled, or BJ015 if fok);
  BJ021 for a market order that is not ioc or fok and for a post-only order that cannot rest;
  BJ020 for a sale to the market maker that returns nothing; BJ001 when the trader's cash
  after the whole order, escrow included, would be negative.
- the market maker's price noise at 60 digits is snapped at 40 decimals before rounding to
  the millionth, so that an exact value (C(1, 0) − C(−1, 0) = b/100) rounds as itself."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from tests.model import MICRO, Refused, ceil6, cost, floor6

ZERO = Decimal(0)
ONE = Decimal(1)
MAX_QUANTITY = Decimal(10) ** 9

# the exchanges' odds ladder: from each bound up to the next, by the step
LADDER = [(Decimal("1.01"), Decimal("0.01")), (Decimal(2), Decimal("0.02")),
          (Decimal(3), Decimal("0.05")), (Decimal(4), Decimal("0.1")), (Decimal(6), Decimal("0.2")),
          (Decimal(10), Decimal("0.5")), (Decimal(20), Decimal(1)), (Decimal(30), Decimal(2)),
          (Decimal(50), Decimal(5)), (Decimal(100), Decimal(10)), (Decimal(1000), None)]


def on_ladder(odds: Decimal) -> bool:
    for (low, step), (high, _) in itertools.pairwise(LADDER):
        if low <= odds <= high:
            return (odds - low) % step == 0
    return False


def to_tick(x: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (x / tick).quantize(ONE, rounding=rounding) * tick


def snap(x: Decimal) -> Decimal:
    """A value computed at 60 digits, to 40 decimals: a quantity that is exactly on a millionth
    (C(1, 0) − C(−1, 0) = b/100, say) then rounds as exactly that, whatever the last digits'
    noise; nothing real lies within 1e-40 of a millionth without being on it."""
    with localcontext() as ctx:
        ctx.prec = 60
        return x.quantize(Decimal("1e-40"))


def is_quantity(x: Decimal) -> bool:
    return ZERO < x <= MAX_QUANTITY and x == x.quantize(MICRO)


@dataclass
class Order:
    id: int
    user: int
    outcome: int
    side: str                       # buy | sell
    price: Decimal | None           # None for a market order
    shares: Decimal
    kind: str = "limit"
    tif: str = "gtc"
    filled: Decimal = ZERO
    cancelled: Decimal = ZERO
    status: str = "open"
    locked_cash: Decimal = ZERO
    locked_shares: Decimal = ZERO
    reason: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.shares - self.filled - self.cancelled


@dataclass
class Fill:
    """One fill of a taker: against a resting order (how direct, mint or merge), or the market
    maker's one move (how amm, maker None)."""
    taker: int
    outcome: int
    side: str
    how: str
    shares: Decimal
    price: Decimal | None           # the taker's price; None for the market maker
    amount: Decimal
    fee: Decimal
    total: Decimal
    maker: int | None = None        # the resting order's id in the model
    maker_user: int | None = None
    maker_outcome: int | None = None
    maker_side: str | None = None
    maker_amount: Decimal | None = None
    maker_fee: Decimal | None = None
    maker_total: Decimal | None = None
    order: int | None = None        # the taker's order id in the model (None for api.trade)


@dataclass
class Result:
    fills: list[Fill]
    order: Order | None = None      # the order placed (None for api.trade)
    shares: Decimal = ZERO          # what api.trade answers
    amount: Decimal = ZERO
    fee: Decimal = ZERO
    total: Decimal = ZERO


@dataclass
class BookMarket:
    n: int
    pricing: str                    # lmsr | book
    b: Decimal = Decimal(100)
    fee_rate: Decimal = Decimal("0.0167")
    maker_fee_rate: Decimal = ZERO
    tick: Decimal = Decimal("0.01")
    q: list[Decimal] = field(default_factory=list)
    pool: Decimal = ZERO
    pairs: Decimal = ZERO
    last_prices: list[Decimal] | None = None
    cash: dict[int, Decimal] = field(default_factory=dict)
    pos: dict[int, list[Decimal]] = field(default_factory=dict)   # shares outside escrow
    coll: dict[int, Decimal] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    next_id: int = 1

    def __post_init__(self) -> None:
        self.q = [ZERO] * self.n
        if self.pricing == "lmsr":
            with localcontext() as ctx:
                ctx.prec = 60
                self.pool = ceil6(self.b * Decimal(self.n).ln())

    # ---- traders ------------------------------------------------------------------------
    def add_user(self, user: int, cash: Decimal = Decimal(1000)) -> None:
        self.cash[user] = cash
        self.pos[user] = [ZERO] * self.n
        self.coll[user] = ZERO

    def recollateralise(self, user: int) -> None:
        """Collateral is max(0, −min over outcomes of the position held outside escrow)."""
        need = max(ZERO, -min(self.pos[user]))
        self.cash[user] -= need - self.coll[user]
        self.coll[user] = need

    # ---- the market maker -----------------------------------------------------------------
    @property
    def has_maker(self) -> bool:
        return self.pricing == "lmsr"

    def maker_shares_to(self, q: list[Decimal], j: int, side: str, target: Decimal) -> Decimal:
        """The shares that move the maker's price of j to the target, rounded down to the
        millionth; 0 when its price is already there or beyond."""
        with localcontext() as ctx:
            ctx.prec = 60
            others = sum((q[k] / self.b).exp() for k in range(self.n) if k != j)
            qj = self.b * (target.ln() - (ONE - target).ln() + others.ln())
            delta = qj - q[j] if side == "buy" else q[j] - qj
            return max(ZERO, floor6(snap(delta)))

    # ---- the book -------------------------------------------------------------------------
    def candidates(self, j: int, side: str) -> list[tuple[Decimal, int, str]]:
        """(price to the taker, order id, how) of every resting order a taker of j can meet."""
        out = []
        for o in self.orders.values():
            if o.status != "open" or o.kind != "limit" or o.remaining <= 0:
                continue
            if o.outcome == j and o.side != side:
                out.append((o.price, o.id, "direct"))
            elif self.n == 2 and o.outcome != j and o.side == side:
                out.append((ONE - o.price, o.id, "mint" if side == "buy" else "merge"))
        return out

    def best(self, j: int, side: str, limit: Decimal | None) -> tuple[Decimal, Order, str] | None:
        found = self.candidates(j, side)
        if limit is not None:
            found = [c for c in found if (c[0] <= limit if side == "buy" else c[0] >= limit)]
        if not found:
            return None
        price, oid, how = min(found, key=lambda c: (c[0] if side == "buy" else -c[0], c[1]))
        return price, self.orders[oid], how

    def release(self, o: Order, reason: str) -> None:
        """Close an open order: what it still locks comes back."""
        o.cancelled += o.remaining
        o.status = "cancelled"
        o.reason = reason
        self.cash[o.user] += o.locked_cash
        self.pos[o.user][o.outcome] += o.locked_shares
        o.locked_cash = o.locked_shares = ZERO
        self.recollateralise(o.user)

    def maker_fill(self, o: Order, s: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        """A resting order fills s shares at its price: amounts rounded cumulatively over its
        filled quantity, its fee on the cumulative amounts; its escrow pays."""
        before, after = o.filled, o.filled + s
        rate = self.maker_fee_rate
        if o.side == "buy":
            a0, a1 = ceil6(o.price * before), ceil6(o.price * after)
            amount, fee = a1 - a0, ceil6(a1 * rate) - ceil6(a0 * rate)
            total = amount + fee
            o.locked_cash -= total
            assert o.locked_cash >= 0, "a bid's escrow does not cover its fill"
            self.pos[o.user][o.outcome] += s
        else:
            a0, a1 = floor6(o.price * before), floor6(o.price * after)
            amount, fee = a1 - a0, ceil6(a1 * rate) - ceil6(a0 * rate)
            total = amount - fee
            from_shares = min(s, o.locked_shares)
            short = s - from_shares
            o.locked_shares -= from_shares
            o.locked_cash -= short          # a short's coins come back to the trader's cash
            self.cash[o.user] += short
            self.pos[o.user][o.outcome] -= short
            self.cash[o.user] += total
        o.filled = after
        if o.remaining == 0:
            o.status = "filled"
            self.cash[o.user] += o.locked_cash
            self.pos[o.user][o.outcome] += o.locked_shares
            o.locked_cash = o.locked_shares = ZERO
        self.recollateralise(o.user)
        return amount, fee, total

    def set_last(self, j: int, price: Decimal) -> None:
        """A binary book market's prices: where it last traded, the other outcome at the
        complement (none before its first trade)."""
        if self.pricing == "book" and self.n == 2:
            self.last_prices = [price, ONE - price] if j == 0 else [ONE - price, price]

    # ---- taking ---------------------------------------------------------------------------
    def take(self, user: int, j: int, side: str, shares: Decimal, limit: Decimal | None,
             stp: str, taker_order: int | None) -> tuple[list[Fill], Decimal, bool]:
        """Route a taker through the book and the market maker. Returns the fills, the shares
        left and whether self-trade prevention stopped the order (stp cancel_newest)."""
        fills: list[Fill] = []
        remaining = shares
        q = list(self.q)
        amm = ZERO
        stopped = False
        while remaining > 0:
            found = self.best(j, side, limit)
            target = found[0] if found else limit
            if found and limit is not None:
                target = min(target, limit) if side == "buy" else max(target, limit)
            if self.has_maker:
                if target is None:               # a market order past the book
                    amm += remaining
                    q[j] += remaining if side == "buy" else -remaining
                    remaining = ZERO
                    break
                k = min(remaining, self.maker_shares_to(q, j, side, target))
                if k > 0:
                    amm += k
                    q[j] += k if side == "buy" else -k
                    remaining -= k
                    if remaining == 0:
                        break
            if found is None:
                break
            price, o, how = found
            if o.user == user:                   # met on the way: self-trade prevention
                if stp == "cancel_newest":
                    stopped = True
                    break
                self.release(o, f"self-trade prevention: met by order {taker_order}")
                continue
            s = min(remaining, o.remaining)
            if side == "buy":
                amount = ceil6(price * s)
                fee = ceil6(amount * self.fee_rate)
                total = amount + fee
                self.cash[user] -= total
                self.pos[user][j] += s
            else:
                amount = floor6(price * s)
                fee = ceil6(amount * self.fee_rate)
                total = amount - fee
                self.cash[user] += total
                self.pos[user][j] -= s
            m_amount, m_fee, m_total = self.maker_fill(o, s)
            if how == "mint":
                self.pool += s
                self.pairs += s
            elif how == "merge":
                self.pool -= s
                self.pairs -= s
            self.set_last(j, price)
            fills.append(Fill(user, j, side, how, s, price, amount, fee, total,
                              o.id, o.user, o.outcome, o.side, m_amount, m_fee, m_total,
                              taker_order))
            remaining -= s
        if amm > 0:
            with localcontext() as ctx:
                ctx.prec = 60
                if side == "buy":
                    amount = ceil6(snap(cost(q, self.b) - cost(self.q, self.b)))
                    fee = ceil6(amount * self.fee_rate)
                    total = amount + fee
                else:
                    amount = floor6(snap(cost(self.q, self.b) - cost(q, self.b)))
                    fee = ceil6(amount * self.fee_rate)
                    total = amount - fee
            if side == "sell" and total <= 0:
                raise Refused("BJ020")          # a sale too small to return anything
            self.q = q
            self.pool += amount if side == "buy" else -amount
            self.cash[user] += -total if side == "buy" else total
            self.pos[user][j] += amm if side == "buy" else -amm
            fills.append(Fill(user, j, side, "amm", amm, None, amount, fee, total,
                              order=taker_order))
        self.recollateralise(user)
        return fills, remaining, stopped

    # ---- commands -------------------------------------------------------------------------
    def transact(self, fn, *args, **kwargs):
        """Run a command on a copy; keep the copy unless it is refused."""
        trial = copy.deepcopy(self)
        result = fn(trial, *args, **kwargs)
        self.__dict__.update(trial.__dict__)
        return result

    def place_order(self, user: int, j: int, side: str, kind: str = "limit",
                    shares: Decimal | None = None, price: Decimal | None = None,
                    odds: Decimal | None = None, stake: Decimal | None = None,
                    tif: str = "gtc", post_only: bool = False,
                    stp: str = "cancel_resting") -> Result:
        return self.transact(BookMarket._place, user, j, side, kind, shares, price, odds, stake,
                             tif, post_only, stp)

    def _place(self, user, j, side, kind, shares, price, odds, stake, tif, post_only, stp):
        if side in ("back", "lay"):
            if odds is None or stake is None or shares is not None or price is not None:
                raise Refused("BJ021")
            if not is_quantity(stake):
                raise Refused("BJ020")
            if not on_ladder(odds):
                raise Refused("BJ021")
            shares = floor6(stake * odds)
            with localcontext() as ctx:
                ctx.prec = 60
                inverse = ONE / odds
            if side == "back":
                side, price = "buy", to_tick(inverse, self.tick, ROUND_FLOOR)
            else:
                side, price = "sell", to_tick(inverse, self.tick, ROUND_CEILING)
        if post_only and (kind == "market" or tif in ("ioc", "fok")):
            raise Refused("BJ021")              # a post-only order must be able to rest
        if kind == "market":
            if tif not in ("ioc", "fok") or price is not None or shares is None:
                raise Refused("BJ021")
        elif price is None or not (ZERO < price < ONE) or price % self.tick != 0:
            raise Refused("BJ021")
        if shares is None or not is_quantity(shares):
            raise Refused("BJ020")
        if kind == "market" and not self.has_maker and not any(
                o.status == "open" for o in self.orders.values()):
            raise Refused("BJ016")              # a book market with no resting order at all
        order = Order(self.next_id, user, j, side, price, shares, kind, tif, status="pending")
        self.next_id += 1
        self.orders[order.id] = order
        fills, remaining, stopped = self.take(user, j, side, shares, price, stp, order.id)
        order.filled = shares - remaining
        if post_only and fills:
            raise Refused("BJ014")
        if tif == "fok" and remaining > 0:
            raise Refused("BJ015")
        if remaining == 0:
            order.status = "filled"
        elif stopped or tif in ("ioc", "fok") or kind == "market":
            order.cancelled = remaining
            order.status = "cancelled"
            order.reason = "self-trade prevention" if stopped else "immediate or cancel"
        else:
            self.rest(order)
        if self.cash[user] < 0:
            raise Refused("BJ001")
        return Result(fills, order)

    def rest(self, o: Order) -> None:
        """Lock a resting order's worst case: a bid its cost and maker fee, an ask the shares it
        sells out of the position held and, beyond it, 1 coin per share."""
        r = o.remaining
        o.status = "open"
        if o.side == "buy":
            amount = ceil6(o.price * r)
            o.locked_cash = amount + ceil6(amount * self.maker_fee_rate)
        else:
            o.locked_shares = min(max(self.pos[o.user][o.outcome], ZERO), r)
            o.locked_cash = r - o.locked_shares
            self.pos[o.user][o.outcome] -= o.locked_shares
        self.cash[o.user] -= o.locked_cash
        self.recollateralise(o.user)

    def trade(self, user: int, j: int, side: str, shares: Decimal) -> Result:
        return self.transact(BookMarket._trade, user, j, side, shares)

    def _trade(self, user, j, side, shares):
        if not is_quantity(shares):
            raise Refused("BJ020")
        fills, remaining, _ = self.take(user, j, side, shares, None, "cancel_resting", None)
        if not fills:
            raise Refused("BJ016")
        if self.cash[user] < 0:
            raise Refused("BJ001")
        return Result(fills, None, shares - remaining, sum(f.amount for f in fills),
                      sum(f.fee for f in fills), sum(f.total for f in fills))

    def cancel(self, user: int, order_id: int | None) -> Order:
        return self.transact(BookMarket._cancel, user, order_id)

    def _cancel(self, user, order_id):
        o = self.orders.get(order_id) if order_id is not None else None
        if o is None or o.user != user:
            raise Refused("BJ012")
        if o.status != "open":
            raise Refused("BJ007")
        self.release(o, "cancelled by the trader")
        return o
