package main

import (
	"testing"
)

// fedclaims faults refuses an unknown scenario, bad rounds and a directory it did
// not write, before it starts anything.
func TestFaultsRefusesBadFlags(t *testing.T) {
	checkRefusesFlags(t, "faults", []flagCase{
		{[]string{"faults", "--out", t.TempDir(), "--scenario", "meteor"}, "unknown scenario"},
		{[]string{"faults", "--out", t.TempDir(), "--rounds", "-1"}, "rounds"},
	})
}
