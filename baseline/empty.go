package baseline

import "errors"

// ErrNoIndexDates is wrapped by NewCohort when no patient has an index date in the
// training split, so that a command can refuse the empty cohort with its likely
// cause (histories too short, or codes it did not understand) rather than a bare
// count.
var ErrNoIndexDates = errors.New("no labelled patients")
