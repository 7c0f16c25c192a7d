//go:build !openblas

package localfed

const benchBuildTags = ""
