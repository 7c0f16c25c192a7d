//go:build openblas

package localfed

// benchBuildTags are the tags this test binary was built with, for building the
// aggregator binary TestBench runs.
const benchBuildTags = "openblas"
