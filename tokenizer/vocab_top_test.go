package tokenizer

import "testing"

func TestNewTopKeepsMostFrequent(t *testing.T) {
	ct := &CountTable{MinCount: 2, Patients: 100, Counts: map[string]int64{"ICD10//A01": 50, "ICD10//B01": 40, "ICD10//C01": 40, "ICD10//D01": 3}}
	v, err := NewTop(ct, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != NumSpecial+2 {
		t.Fatalf("%d tokens, want %d", v.Len(), NumSpecial+2)
	}
	for _, c := range []string{"ICD10//A01", "ICD10//B01"} {
		if _, ok := v.index[c]; !ok {
			t.Errorf("code %s dropped", c)
		}
	}
	if _, ok := v.index["ICD10//D01"]; ok {
		t.Error("the rarest code kept over the bound")
	}
	all, err := NewTop(ct, 2, 0)
	if err != nil || all.Len() != NumSpecial+4 {
		t.Fatalf("no bound: %v tokens, %v", all.Len(), err)
	}
}
