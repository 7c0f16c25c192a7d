package eval

import "math"

// HalfWidthConstant is c in the rule of thumb HalfWidth = c/√P: the half-width of
// the 95% paired bootstrap interval of an AUPRC difference between two models on a
// test split with P positives. It was measured on synthetic hospitals, comparing
// two real gradient-boosting models of the same labels (time-aware against
// all-time count features) across test splits of 8 to 300 positives
// (pipeline.TestPairedHalfWidth, FEDCLAIMS_LONG_TESTS=1, which fails if the
// measurement moves more than a third away from it). Two models that agree more
// than those do get narrower intervals, two that disagree more wider ones: it is a
// planning figure, not a promise.
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
