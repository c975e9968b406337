"""An independent model of the exchange's money, written from the formulas (DESIGN.md
"Markets and pricing"), in Python decimals at 60 digits: LMSR cost C(q) = b·ln Σ e^(q_i/b),
costs and fees rounded up to 6 places, proceeds rounded down, shorts collateralised by
max(0, −min_i position_i)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

MICRO = Decimal("0.000001")


def ceil6(x: Decimal) -> Decimal:
    return x.quantize(MICRO, rounding=ROUND_CEILING)


def floor6(x: Decimal) -> Decimal:
    return x.quantize(MICRO, rounding=ROUND_FLOOR)


def cost(q: list[Decimal], b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return b * sum((qi / b).exp() for qi in q).ln()


class Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Market:
    b: Decimal
    fee_rate: Decimal
    n: int
    q: list[Decimal] = field(default_factory=list)
    pool: Decimal = Decimal(0)
    positions: dict[int, list[Decimal]] = field(default_factory=dict)
    collateral: dict[int, Decimal] = field(default_factory=dict)
    balance: dict[int, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.q = [Decimal(0)] * self.n
        with localcontext() as ctx:
            ctx.prec = 60
            self.pool = ceil6(self.b * Decimal(self.n).ln())

    def buy_terms(self, j: int, shares: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        after = list(self.q)
        after[j] += shares
        amount = ceil6(cost(after, self.b) - cost(self.q, self.b))
        fee = ceil6(amount * self.fee_rate)
        return amount, fee, amount + fee

    def sell_terms(self, j: int, shares: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        after = list(self.q)
        after[j] -= shares
        amount = floor6(cost(self.q, self.b) - cost(after, self.b))
        fee = ceil6(amount * self.fee_rate)
        return amount, fee, amount - fee

    def shares_for(self, j: int, budget: Decimal) -> Decimal:
        """The most micro-shares whose total stays within the budget, by bisection."""
        def fits(micro: int) -> bool:
            return self.buy_terms(j, Decimal(micro) * MICRO)[2] <= budget
        lo, hi = 0, 1_000_000
        while fits(hi):
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return Decimal(lo) * MICRO

    def trade(self, user: int, j: int, side: str, shares: Decimal | None,
              spend: Decimal | None) -> dict:
        if spend is not None:
            shares = self.shares_for(j, spend)
            if shares == 0:
                raise Refused("BJ020")
        if side == "buy":
            amount, fee, total = self.buy_terms(j, shares)
        else:
            amount, fee, total = self.sell_terms(j, shares)
            if total <= 0:
                raise Refused("BJ020")
        position = list(self.positions.get(user, [Decimal(0)] * self.n))
        position[j] += shares if side == "buy" else -shares
        required = max(Decimal(0), -min(position))
        delta = required - self.collateral.get(user, Decimal(0))
        cash = self.balance[user] + (-total if side == "buy" else total) - delta
        if cash < 0:
            raise Refused("BJ001")
        self.q[j] += shares if side == "buy" else -shares
        self.pool += amount if side == "buy" else -amount
        self.positions[user] = position
        self.collateral[user] = required
        self.balance[user] = cash
        return {"shares": shares, "amount": amount, "fee": fee, "total": total,
                "balance": cash, "locked": required, "position": position[j]}
