package eval

import "math"

// HalfWidthConstant is c in the rule of thumb HalfWidth = c/√P: the half-width of
// the 95% paired bootstrap interval of an AUPRC difference between two models on a
// test split with P positives. It was measured on synthetic hospitals, comparing
// two real gradient-boosting models of the same labels (time-aware against
// all-time count features) on every default task with at least 10 test positives,
// in synthetic hospitals of 6,000 to 48,000 patients: 27 comparisons of 12 to 144
// test positives, fitted c = 0.44 (single tasks 0.26 to 0.76; about 7 minutes on
// two cores with pipeline.TestPairedHalfWidth under FEDCLAIMS_LONG_TESTS=1, which
// fails if the fit moves more than a third away from this constant). Two models
// that agree more than those do get narrower intervals, two that disagree more
// wider ones: it is a planning figure, not a promise.
const HalfWidthConstant = 0.43

// HalfWidth is the planning half-width HalfWidthConstant/√positives of a paired
// AUPRC difference, so that a coordinator can see before training whether a task's
// test split can tell a difference of a given size from noise. It is +Inf without
// positives.
func HalfWidth(positives int) float64 {
	if positives <= 0 {
		return math.Inf(1)
	}
	return HalfWidthConstant / math.Sqrt(float64(positives))
}
