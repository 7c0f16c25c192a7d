package eval

// A score means little without the patients it was computed on: a report says
// which dataset it scored and whose split chose its test patients, since a
// dataset's own held-out split and fedclaims' hash give different test sets.

// renew recomputes the report's comparisons (NewReport) keeping what it says of
// its source.
func (r *Report) renew() *Report {
	n := NewReport(r.Tasks)
	n.Dataset, n.Split = r.Dataset, r.Split
	return n
}

// source is the report's opening lines naming the dataset and the split, empty
// when neither is known.
func (r *Report) source() string {
	s := ""
	if r.Dataset != "" {
		s += "Dataset: " + r.Dataset + "\n"
	}
	if r.Split != "" {
		s += "Split: " + r.Split + "\n"
	}
	if s != "" {
		s += "\n"
	}
	return s
}
