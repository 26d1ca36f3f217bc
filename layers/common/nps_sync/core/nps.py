"""NPS arithmetic over promoter/passive/detractor counts. Pure; rounds to one decimal."""

import math

Z_95 = 1.96


def nps(promoters: int, passives: int, detractors: int) -> float | None:
    """%promoters - %detractors, -100..100; None when nobody answered."""
    n = promoters + passives + detractors
    if n <= 0:
        return None
    return round((promoters - detractors) / n * 100, 1)


def margin_of_error(promoters: int, passives: int, detractors: int) -> float | None:
    """95 % margin of error of the NPS: 1.96 * sqrt((pP + pD - (pP - pD)^2) / n) * 100."""
    n = promoters + passives + detractors
    if n <= 0:
        return None
    p_promoter, p_detractor = promoters / n, detractors / n
    variance = max(0.0, p_promoter + p_detractor - (p_promoter - p_detractor) ** 2)
    return round(Z_95 * math.sqrt(variance / n) * 100, 1)


def revenue_weighted_nps(
    mrr_promoters: int, mrr_passives: int, mrr_detractors: int
) -> float | None:
    """NPS where every answer weighs its customer's MRR; None when no MRR is known."""
    return nps(mrr_promoters, mrr_passives, mrr_detractors)
