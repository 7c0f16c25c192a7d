//go:build !openblas

package e2e

const buildTags = ""
