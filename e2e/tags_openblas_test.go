//go:build openblas

package e2e

// buildTags are the tags this test binary was built with, for building the
// fedclaims binary the process tests run.
const buildTags = "openblas"
