"""Paired tests, Holm's correction, TOST equivalence and the verdicts built on them, against textbook
examples and hand computations."""

import math

import numpy as np
import pytest
from scipy import stats

from lotterysearch.errors import ConfigError
from lotterysearch.verdicts import Family, holm, mean_interval, paired_difference

# Student (1908) / Cushny & Peebles: extra hours of sleep under two drugs, ten patients (R's `sleep`).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_on_students_sleep_data() -> None:
    # R: t.test(extra ~ group, data = sleep, paired = TRUE)
    d = paired_difference(SLEEP_1, SLEEP_2)
    assert d.n == 10 and d.df == 9
    assert d.mean == pytest.approx(-1.58)
    assert d.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert d.p == pytest.approx(0.002833, abs=1e-6)
    assert d.ci == pytest.approx((-2.4598858, -0.7001142), abs=1e-6)


def test_paired_t_by_hand_with_two_degrees_of_freedom() -> None:
    # differences 1, 1, 2.5: mean 1.5, sd √0.75, SE 0.5, t = 3; with 2 df the t cdf is
    # 1/2 + t / (2√(2 + t²)), so p = 1 − 3/√11, and t_0.975(2) = 4.302653
    d = paired_difference({0: 1.0, 1: 2.0, 2: 3.5}, {2: 1.0, 0: 0.0, 1: 1.0})  # paired by key
    assert d.differences == (1.0, 1.0, 2.5)
    assert (d.mean, d.se, d.df) == pytest.approx((1.5, 0.5, 2))
    assert d.statistic == pytest.approx(3.0)
    assert d.p == pytest.approx(1 - 3 / math.sqrt(11))
    assert d.ci == pytest.approx((1.5 - 4.302653 * 0.5, 1.5 + 4.302653 * 0.5), abs=1e-6)


def test_pairing_keeps_only_shared_replicates_and_rejects_mixed_inputs() -> None:
    d = paired_difference({0: 0.9, 1: 0.8, 3: 0.7}, {1: 0.5, 0: 0.6, 2: 0.1})
    assert d.differences == pytest.approx((0.3, 0.3))
    with pytest.raises(TypeError, match="not one of each"):
        paired_difference({0: 1.0}, [1.0])
    with pytest.raises(ValueError, match="differ in length: 2 and 1"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match=r"^unknown paired test 'z' \(known: t, wilcoxon\)$"):
        paired_difference([1.0], [1.0], test="z")


def test_degenerate_samples() -> None:
    same = paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # every replicate differs by 0.5
    assert (same.p, same.ci, same.statistic) == (0.0, (0.5, 0.5), math.inf)
    assert same.equivalence_p(1.0) == 0.0 and same.equivalence_p(0.4) == 1.0
    zero = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert zero.p == 1.0
    one = paired_difference([1.0], [0.0])
    assert math.isnan(one.p) and math.isnan(one.std) and math.isnan(one.equivalence_p(1.0))


def test_wilcoxon_exact_p_and_its_floor_at_three_replicates() -> None:
    # all n differences positive: W = 0, exact two-sided p = 2 / 2^n
    assert paired_difference([3, 4, 5, 6, 7, 8], [0] * 6, test="wilcoxon").p == pytest.approx(2 / 64)
    three = paired_difference([3, 4, 5], [0, 0, 0], test="wilcoxon")
    assert three.p == pytest.approx(0.25) and three.statistic == 0  # no 3 inits can reach p < 0.05
    # one-sided signed-rank tests of d + m > 0 and d − m < 0
    d = paired_difference([0.1, -0.2, 0.05, 0.15, -0.1, 0.0], [0.0] * 6, test="wilcoxon")
    assert d.equivalence_p(1.0) == pytest.approx(1 / 64)
    assert d.equivalence_p(0.12) == pytest.approx(
        max(
            stats.wilcoxon(np.array(d.differences) + 0.12, alternative="greater").pvalue,
            stats.wilcoxon(np.array(d.differences) - 0.12, alternative="less").pvalue,
        )
    )


def test_holm_on_a_hand_sorted_list() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → kept non-decreasing: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02]
    assert holm([]) == []
    with pytest.raises(ValueError, match="a p-value for every test"):
        holm([0.01, math.nan])


def test_tost_by_hand_inside_and_outside_the_margin() -> None:
    # differences 0.1, 0, −0.1: mean 0, SE 0.1/√3; TOST p = 1 − F_2(margin / SE) with F_2 the t cdf of 2 df
    d = paired_difference([0.1, 0.0, -0.1], [0.0, 0.0, 0.0])
    se = 0.1 / math.sqrt(3)

    def one_sided(t: float) -> float:
        return 0.5 - t / (2 * math.sqrt(2 + t * t))

    assert d.equivalence_p(0.5) == pytest.approx(one_sided(0.5 / se))  # 0.0065: 90% CI ±0.169 inside ±0.5
    assert d.equivalence_p(0.5) < 0.05
    assert d.equivalence_p(0.1) == pytest.approx(one_sided(0.1 / se))  # 0.113: the CI crosses ±0.1
    assert d.equivalence_p(0.1) > 0.05
    with pytest.raises(ConfigError, match=r"^an equivalence margin must be positive, got -1$"):
        d.equivalence_p(-1.0)


def test_tost_rejects_exactly_when_the_90_percent_interval_lies_inside_the_margin() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        x = rng.normal(rng.normal(0, 0.3), rng.uniform(0.05, 0.5), n)
        margin = float(rng.uniform(0.05, 1.0))
        d = paired_difference(x, np.zeros(n), confidence=0.90)
        lo, hi = d.ci
        assert (d.equivalence_p(margin) < 0.05) == (-margin < lo and hi < margin)


def test_a_family_decides_with_holms_correction_over_every_test() -> None:
    fam = Family()
    fam.compare("clear", [5.0, 5.1, 4.9, 5.05], [0.0, 0.1, 0.0, 0.0])  # t(3) = 158.5
    fam.compare("alone", [1.0, 2.0, 3.5], [0.0, 1.0, 1.0])  # p = 0.095 on its own
    fam.compare("level", [0.1, 0.0, -0.1, 0.05], [0.0] * 4, margin=0.5)
    fam.compare("noisy", [1.0, -1.0, 0.5], [0.0] * 3, margin=0.2)
    fam.compare("missing", {0: 1.0}, {1: 1.0})
    fam.compare("single", {0: 1.0}, {0: 0.0}, margin=0.5)
    v = fam.decide()
    assert len(fam) == 6
    ps = [
        v["clear"].difference.p,
        v["alone"].difference.p,
        v["level"].difference.p,
        v["level"].difference.equivalence_p(0.5),
        v["noisy"].difference.p,
        v["noisy"].difference.equivalence_p(0.2),
    ]
    adjusted = holm(ps)
    assert all(x.family_size == 6 for x in v.values())
    assert v["clear"].p_holm == pytest.approx(adjusted[0]) and v["clear"].p_holm == pytest.approx(6 * ps[0])
    assert v["level"].p_equivalence_holm == pytest.approx(adjusted[3])
    assert {k: x.kind for k, x in v.items()} == {
        "clear": "better",
        "alone": "inconclusive",
        "level": "equivalent",
        "noisy": "inconclusive",
        "missing": "no data",
        "single": "inconclusive",
    }
    assert str(v["level"]) == "equivalent within ±0.50"
    assert v["clear"].p_equivalence_holm is None and math.isnan(v["single"].p_holm)
    worse = Family()
    worse.compare("x", [0.0, 0.1, 0.0], [0.5, 0.55, 0.5], margin=1.0)
    w = worse.decide()["x"]
    assert (w.kind, str(w)) == ("worse", "worse, by less than ±1.00")  # a small, clear difference
    with pytest.raises(ValueError, match="'clear' is already in the family"):
        fam.compare("clear", [1.0], [1.0])
    with pytest.raises(ConfigError, match=r"^alpha must lie in \(0, 1\), got 2$"):
        Family(alpha=2.0)


def test_verdict_texts_give_the_interval_in_two_decimals_and_the_test() -> None:
    fam = Family()
    fam.compare("a", [1.0, 2.0, 3.5], [0.0, 1.0, 1.0])
    fam.compare("b", [0.5, 0.7, 0.2], [0.0, 0.1, 0.0])
    fam.compare("none", {}, {})
    fam.compare("one", [0.25], [0.0])
    v = fam.decide()
    assert v["a"].interval() == "+1.50 [-0.65, +3.65]"
    p_b = v["b"].difference.p  # the smaller of the two: Holm doubles it, and a's adjusted p is the larger
    assert p_b < v["a"].difference.p
    assert v["a"].test_text() == f"t(2) = 3.00, p = 0.0955, Holm p = {max(2 * p_b, v['a'].difference.p):.3g}"
    assert v["none"].interval() == "–" and v["one"].interval() == "+0.25 (n = 1)"
    assert v["one"].test_text() == "no test (n < 2)"
    w = Family(test="wilcoxon")
    w.compare("a", [3, 4, 5], [0, 0, 0])
    assert w.decide()["a"].test_text() == "W = 0, p = 0.25, Holm p = 0.25"
    # differences a, a, a + 1.5 have SE 0.5; t(2) = 4.3119 gives p = 1 − t/√(2 + t²) = 0.0498, just below α
    edge = Family()
    edge.compare("a", [1.65595, 1.65595, 3.15595], [0.0, 0.0, 0.0])
    e = edge.decide()["a"]
    assert e.test_text() == "t(2) = 4.31, p = 0.0498, Holm p = 0.0498" and e.kind == "better"
    tiny = Family()
    tiny.compare("a", [5.0, 5.1, 4.9, 5.05], [0.0, 0.1, 0.0, 0.0])
    assert tiny.decide()["a"].test_text() == "t(3) = 158.55, p = 6e-07, Holm p = 6e-07"


def test_mean_interval_is_the_t_interval_of_a_mean_by_hand():
    # [1, 2, 3]: mean 2, s = 1, SE = 1/sqrt(3), t(0.975; 2) = 4.302653 (tables)
    mean, lo, hi = mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert mean == 2.0
    assert lo == pytest.approx(2 - half, abs=1e-6) and hi == pytest.approx(2 + half, abs=1e-6)
    assert all(math.isnan(x) for x in mean_interval([0.5])[1:])
