package claims

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRecognise(t *testing.T) {
	tests := []struct{ in, want string }{
		// fedclaims' own codes and MEDS's are kept.
		{"ICD10//E11.9", "ICD10//E11.9"},
		{"ATC//C10AA05", "ATC//C10AA05"},
		{"VISIT//9201", "VISIT//9201"},
		{"MEDS_DEATH", "MEDS_DEATH"},
		{"LAB//51221//%", "LAB//51221//%"},
		{"HCPCS//Hospital observation service", "HCPCS//Hospital observation service"},
		// MIMIC-IV MEDS ETL.
		{"DIAGNOSIS//ICD//10//E039", "ICD10CM//E03.9"},
		{"DIAGNOSIS//ICD//10//I10", "ICD10CM//I10"},
		{"DIAGNOSIS//ICD//10//E11.9", "ICD10CM//E11.9"},
		{"DIAGNOSIS//ICD//9//4019", "ICD9CM//401.9"},
		{"DIAGNOSIS//ICD//9//V3000", "ICD9CM//V30.00"},
		{"DIAGNOSIS//ICD//9//E8497", "ICD9CM//E849.7"},
		{"DIAGNOSIS//ICD//9//not-icd", "ICD9CM//not-icd"},
		{"PROCEDURE//ICD//10//0DTJ4ZZ", "ICD10PCS//0DTJ4ZZ"},
		{"PROCEDURE//ICD//9//3893", "ICD9PROC//38.93"},
		{"MEDICATION//START//Sodium Chloride 0.9%  Flush", "DRUG//SODIUM CHLORIDE 0.9% FLUSH"},
		{"MEDICATION//Heparin//Administered", "DRUG//HEPARIN"},
		{"MEDICATION//STOP//Heparin", "MEDICATION//STOP//Heparin"},
		{"MEDICATION//Heparin//Not Given", "MEDICATION//Heparin//Not Given"},
		{"DIAGNOSIS//ICD//11//XX", "DIAGNOSIS//ICD//11//XX"},
		{"DIAGNOSIS//ICD//10//", "DIAGNOSIS//ICD//10//"},
		{"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM"},
		// OMOP->MEDS ETL.
		{"ICD10CM/E11.9", "ICD10CM//E11.9"},
		{"ICD10CM/E119", "ICD10CM//E11.9"},
		{"ICD10/I21.0", "ICD10//I21.0"},
		{"ICD9CM/401.9", "ICD9CM//401.9"},
		{"ICD9Proc/38.93", "ICD9PROC//38.93"},
		{"ICD10PCS/0dtj4zz", "ICD10PCS//0DTJ4ZZ"},
		{"RxNorm/197361", "RXNORM//197361"},
		{"RxNorm Extension/OMOP1234", "RXNORM//OMOP1234"},
		{"NDC/00002143380", "NDC//00002143380"},
		{"NDC/0002-1433-80", "NDC//00002143380"},
		{"ATC/c10aa05", "ATC//C10AA05"},
		{"SNOMED/44054006", "SNOMED//44054006"},
		{"LOINC/4548-4", "LOINC//4548-4"},
		{"CPT4/99213", "CPT4//99213"},
		{"HCPCS/J1100", "HCPCS//J1100"},
		{"Gender/F", "GENDER//F"},
		{"Visit/IP", "VISIT//IP"},
		{"Race/5", "Race/5"},
		{"CVX/140", "CVX/140"},
		{"ICD10CM/", "ICD10CM/"},
		{"/E11.9", "/E11.9"},
		{"free text", "free text"},
	}
	for _, tc := range tests {
		if got := Recognise(tc.in); got != tc.want {
			t.Errorf("Recognise(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// What Recognise writes it keeps.
		if got := Recognise(tc.want); got != tc.want {
			t.Errorf("Recognise(%q) = %q, not idempotent", tc.want, got)
		}
	}
}

func TestRecognisedKinds(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
	}{
		{"DIAGNOSIS//ICD//10//E039", KindDiagnosis},
		{"DIAGNOSIS//ICD//9//4019", KindDiagnosis},
		{"PROCEDURE//ICD//10//0DTJ4ZZ", KindProcedure},
		{"PROCEDURE//ICD//9//3893", KindProcedure},
		{"MEDICATION//START//Aspirin", KindMedication},
		{"RxNorm/197361", KindMedication},
		{"NDC/00002143380", KindMedication},
		{"ATC/C10AA05", KindMedication},
		{"CPT4/99213", KindProcedure},
		{"LAB//51221//%", KindOther},
		{"SNOMED/44054006", KindOther},
	}
	for _, tc := range tests {
		if got := KindOf(Recognise(tc.in)); got != tc.want {
			t.Errorf("KindOf(Recognise(%q)) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// Roll-up works on the dotted form.
	if p, ok := Parent(Recognise("DIAGNOSIS//ICD//10//E1165")); !ok || p != "ICD10CM//E11.6" {
		t.Errorf("Parent = %q, %v; want ICD10CM//E11.6", p, ok)
	}
}

func TestCodeRules(t *testing.T) {
	rules := CodeRules{
		{Pattern: `LOCAL_DX//(.*)`, System: "ICD10CM", Code: "$1"},
		{Pattern: `TRANSFER_TO//.*`, Drop: true},
		{Pattern: `LAB//(?P<item>\d+)//.*`, System: "LAB", Code: "${item}"},
		// A user rule comes before the built-ins.
		{Pattern: `MEDICATION//START//(.*)`, System: "ATC", Code: "x$1"},
		// An empty expansion does not match: the next rule, or a built-in, gets it.
		{Pattern: `DIAGNOSIS//ICD//10//(Z*)E.*`, System: "ICD10", Code: "$1"},
	}
	m, err := NewCodeMap(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, want string
		keep     bool
	}{
		{"LOCAL_DX//e119", "ICD10CM//E11.9", true},
		{"TRANSFER_TO//ED//Emergency Department", "", false},
		{"LAB//51221//%", "LAB//51221", true},
		{"MEDICATION//START//a10", "ATC//XA10", true},
		{"DIAGNOSIS//ICD//10//E039", "ICD10CM//E03.9", true},
		{"LOCAL_DX//", "LOCAL_DX//", true},           // empty $1: nothing else matches
		{"XLOCAL_DX//E119", "XLOCAL_DX//E119", true}, // patterns match the whole code
		{"ICD10CM/E11.9", "ICD10CM//E11.9", true},
	}
	for _, tc := range tests {
		got, keep := m.Map(tc.in)
		if keep != tc.keep || (keep && got != tc.want) {
			t.Errorf("Map(%q) = %q, %v; want %q, %v", tc.in, got, keep, tc.want, tc.keep)
		}
	}
	var none *CodeMap
	if got, keep := none.Map("DIAGNOSIS//ICD//9//4019"); !keep || got != "ICD9CM//401.9" {
		t.Errorf("nil CodeMap: %q, %v", got, keep)
	}
}

func TestParseCodeRulesErrors(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"bad regexp", "- pattern: 'a('\n  system: ICD10\n  code: $0\n", "rules.yaml: rule 1 (line 1): field pattern: error parsing regexp"},
		{"no system", "- pattern: a\n  code: $0\n- pattern: b\n  code: x\n", "rule 1 (line 1): field system: required"},
		{"second rule", "- pattern: a\n  system: ICD10\n  code: $0\n\n- pattern: b\n  system: icd10\n  code: x\n", "rule 2 (line 5): field system: \"icd10\""},
		{"missing group", "- pattern: 'X//(.*)'\n  system: ATC\n  code: $2\n", "rule 1 (line 1): field code: \"$2\": $2: the pattern has 1 groups"},
		{"letters after group", "- pattern: 'X//(.*)'\n  system: ATC\n  code: $1x\n", `no group named "1x"`},
		{"lone dollar", "- pattern: 'X//(.*)'\n  system: ATC\n  code: 'a$'\n", "field code: \"a$\": a $ that names no group"},
		{"no code", "- pattern: a\n  system: ATC\n", "field code: required"},
		{"drop with system", "- pattern: a\n  drop: true\n  system: ATC\n", "rule 1 (line 1): field drop: a rule that drops codes takes no system or code"},
		{"no pattern", "- system: ATC\n  code: x\n", "field pattern: required"},
		{"unknown key", "- pattern: a\n  sytem: ATC\n", "rules.yaml: yaml: unmarshal errors:\n  line 2: field sytem not found"},
		{"a mapping", "rules:\n  - pattern: a\n", "codes file rules.yaml: line 1: want a list of rules (- pattern: ...), not a mapping"},
		{"empty", "", "rules.yaml: empty codes file"},
		{"malformed", "- pattern: [\n", "codes file rules.yaml: yaml:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCodeRules("rules.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	rules, err := ParseCodeRules("rules.yaml", []byte("- pattern: 'A//(.*)'\n  system: ATC\n  code: '$1'\n- pattern: 'B.*'\n  drop: true\n"))
	want := CodeRules{{Pattern: "A//(.*)", System: "ATC", Code: "$1"}, {Pattern: "B.*", Drop: true}}
	if err != nil || !reflect.DeepEqual(rules, want) {
		t.Fatalf("got %+v, %v; want %+v", rules, err, want)
	}
}

func TestCodesFileOpenError(t *testing.T) {
	dir := t.TempDir()
	writeAll(t, filepath.Join(dir, "meds"), samplePatients())
	rules := filepath.Join(dir, "codes.yaml")
	if err := os.WriteFile(rules, []byte("- pattern: a\n  system: ATC\n  code: $3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "meds"), smallOMOP(t)} {
		_, err := Open(path, CodesFile(rules))
		if err == nil || !strings.Contains(err.Error(), "codes file "+rules+": rule 1 (line 1): field code") {
			t.Errorf("Open(%s): err = %v, want the codes file's rule and field", path, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "meds"), CodesFile(filepath.Join(dir, "missing.yaml"))); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
}

// mimicPatients are histories written in the MIMIC-IV MEDS ETL's convention.
func mimicPatients() []*Patient {
	day := func(d int) int64 { return micros("2150-01-01T00:00:00Z") + int64(d)*MicrosPerDay }
	return []*Patient{
		{ID: 10001, Sex: SexFemale, Birth: micros("2090-01-01T00:00:00Z"), HasBirth: true, Events: []Event{
			{Time: day(0), Code: "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", Value: nan},
			{Time: day(0), Code: "DIAGNOSIS//ICD//10//E039", Value: nan},
			{Time: day(0), Code: "DIAGNOSIS//ICD//9//4019", Value: nan},
			{Time: day(0), Code: "LAB//51221//%", Value: 38.5},
			{Time: day(1), Code: "PROCEDURE//ICD//10//0DTJ4ZZ", Value: nan},
			{Time: day(1), Code: "MEDICATION//START//Acetaminophen", Value: nan},
			{Time: day(2), Code: "MEDICATION//STOP//Acetaminophen", Value: nan},
			{Time: day(3), Code: CodeDeath, Value: nan},
		}},
		{ID: 10002, Sex: SexMale, Events: []Event{
			{Time: day(5), Code: "DIAGNOSIS//ICD//10//E039", Value: nan},
			{Time: day(5), Code: "PROCEDURE//ICD//9//3893", Value: nan},
			{Time: day(5), Code: "MEDICATION//Heparin//Administered", Value: nan},
			{Time: day(6), Code: "LAB//51221//%", Value: 40},
			{Time: day(6), Code: "TRANSFER_TO//discharge//UNKNOWN", Value: nan},
		}},
	}
}

func TestInspectMIMICConvention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mimic")
	writeAll(t, dir, mimicPatients())
	src, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s, err := Inspect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	wantSys := map[string]int64{
		SystemICD10CM: 2, SystemICD9CM: 1, SystemICD10PCS: 1, SystemICD9Proc: 1, SystemDrug: 2,
		SystemLab: 2, SystemMEDS: 1, SystemUnrecognised: 3,
	}
	if !reflect.DeepEqual(s.EventsBySystem, wantSys) {
		t.Errorf("events_by_system = %v, want %v", s.EventsBySystem, wantSys)
	}
	wantKind := map[string]int64{"diagnosis": 3, "procedure": 2, "medication": 2, "other": 5, "death": 1}
	if !reflect.DeepEqual(s.EventsByKind, wantKind) {
		t.Errorf("events_by_kind = %v, want %v", s.EventsByKind, wantKind)
	}
	wantTop := []PrefixCount{{"HOSPITAL_ADMISSION", 1}, {"MEDICATION", 1}, {"TRANSFER_TO", 1}}
	if !reflect.DeepEqual(s.TopUnrecognised, wantTop) {
		t.Errorf("top unrecognised = %v, want %v", s.TopUnrecognised, wantTop)
	}
	if got := s.UnrecognisedShare(); got != 3.0/13 {
		t.Errorf("unrecognised share %v, want 3/13", got)
	}
}

// smallOMOP writes an OMOP export with a visit, an ICD-10-CM condition and a drug.
func smallOMOP(t *testing.T) string {
	return writeOMOP(t, map[string]string{
		"person.csv":               okPerson,
		"visit_occurrence.csv":     "person_id,visit_concept_id,visit_start_date\n2,9201,2015-01-01\n",
		"condition_occurrence.csv": "person_id,condition_start_date,condition_source_value\n2,2015-01-01,E11.9\n",
		"drug_exposure.csv":        "person_id,drug_exposure_start_date,drug_source_value,drug_concept_id\n2,2015-01-02,c10aa05,0\n",
	})
}

func TestCodeRulesInReaders(t *testing.T) {
	dir := t.TempDir()
	meds := filepath.Join(dir, "meds")
	writeAll(t, meds, mimicPatients())
	m, err := NewCodeMap(CodeRules{
		{Pattern: `TRANSFER_TO//.*|HOSPITAL_ADMISSION//.*`, Drop: true},
		{Pattern: `MEDICATION//STOP//.*`, Drop: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(meds, CodeMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, src)
	src.Close()
	var codes []string
	for _, p := range ps {
		for _, e := range p.Events {
			codes = append(codes, e.Code)
		}
	}
	want := []string{
		"ICD10CM//E03.9", "ICD9CM//401.9", "LAB//51221//%", "DRUG//ACETAMINOPHEN", "ICD10PCS//0DTJ4ZZ", CodeDeath,
		"DRUG//HEPARIN", "ICD10CM//E03.9", "ICD9PROC//38.93", "LAB//51221//%",
	}
	if !reflect.DeepEqual(codes, want) {
		t.Errorf("codes %q, want %q", codes, want)
	}
	if got := src.Stats().Skipped[skippedDropped]; got != 3 {
		t.Errorf("dropped %d rows, want 3", got)
	}
	if len(ps) != 2 || ps[0].Sex != SexFemale || !ps[0].HasBirth {
		t.Errorf("patients lost their static facts: %+v", ps)
	}

	// The OMOP reader's codes go through the same rules.
	m, err = NewCodeMap(CodeRules{{Pattern: `VISIT//.*`, Drop: true}, {Pattern: `ICD10CM//(.*)`, System: "ICD10", Code: "$1"}})
	if err != nil {
		t.Fatal(err)
	}
	osrc, err := Open(smallOMOP(t), CodeMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	defer osrc.Close()
	codes = nil
	for _, p := range readAll(t, osrc) {
		for _, e := range p.Events {
			codes = append(codes, e.Code)
		}
	}
	if want := []string{"ICD10//E11.9", "ATC//C10AA05"}; !reflect.DeepEqual(codes, want) {
		t.Errorf("OMOP codes %q, want %q", codes, want)
	}
	if got := osrc.Stats().Skipped[skippedDropped]; got != 1 {
		t.Errorf("OMOP: dropped %d rows, want 1", got)
	}
}

func TestInspectOMOPConvention(t *testing.T) {
	day := micros("2019-06-01T00:00:00Z")
	var ps []*Patient
	for i := range 3 {
		ps = append(ps, &Patient{ID: int64(i + 1), Sex: SexMale, Events: []Event{
			{Time: day, Code: "ICD10CM/E11.9", Value: nan},
			{Time: day, Code: "ICD9CM/401.9", Value: nan},
			{Time: day, Code: "RxNorm/197361", Value: nan},
			{Time: day, Code: "NDC/00002143380", Value: nan},
			{Time: day, Code: "SNOMED/44054006", Value: nan},
			{Time: day, Code: "LOINC/4548-4", Value: 6.1},
			{Time: day, Code: "CPT4/99213", Value: nan},
			{Time: day, Code: "Visit/IP", Value: nan},
			{Time: day, Code: "CVX/140", Value: nan},
		}})
	}
	dir := filepath.Join(t.TempDir(), "omop-meds")
	writeAll(t, dir, ps)
	src, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s, err := Inspect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		SystemICD10CM: 3, SystemICD9CM: 3, SystemRxNorm: 3, SystemNDC: 3, SystemSNOMED: 3, SystemLOINC: 3,
		SystemCPT4: 3, SystemVisit: 3, SystemUnrecognised: 3,
	}
	if !reflect.DeepEqual(s.EventsBySystem, want) {
		t.Errorf("events_by_system = %v, want %v", s.EventsBySystem, want)
	}
	if s.EventsByKind["diagnosis"] != 6 || s.EventsByKind["medication"] != 6 || s.EventsByKind["procedure"] != 3 {
		t.Errorf("events_by_kind = %v", s.EventsByKind)
	}
	if want := []PrefixCount{{"CVX", 3}}; !reflect.DeepEqual(s.TopUnrecognised, want) {
		t.Errorf("top unrecognised = %v, want %v", s.TopUnrecognised, want)
	}
}
