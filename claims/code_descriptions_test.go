package claims

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
)

// TestOMOPCodeDescriptions reads an export whose concept table names the concepts
// its rows carry and wants each emitted code described by its concept's name:
// conditions and NDC drugs by their source concept, RxNorm drugs and visits by
// their concept, rewritten codes under their new name, codes without a concept
// undescribed; the second read of concept.csv leaves the row counts alone.
func TestOMOPCodeDescriptions(t *testing.T) {
	dir := writeOMOP(t, map[string]string{
		"person.csv":           okPerson,
		"visit_occurrence.csv": "person_id,visit_concept_id,visit_start_date\n2,9201,2015-01-01\n",
		"condition_occurrence.csv": "person_id,condition_start_date,condition_source_value,condition_source_concept_id\n" +
			"2,2015-01-01,E11.9,45576876\n2,2015-01-03,I10,\n",
		"drug_exposure.csv": "person_id,drug_exposure_start_date,drug_source_value,drug_concept_id,drug_source_concept_id\n" +
			"2,2015-01-02,00002751001,40166274,45144375\n2,2015-01-02,,1545958,\n2,2015-01-04,c10aa05,0,not-a-number\n",
		"concept.csv": "concept_id,concept_name,domain_id,vocabulary_id,concept_code\n" +
			"45576876,Type 2 diabetes mellitus without complications,Condition,ICD10CM,E11.9\n" +
			"45144375,Insulin Lispro 100 UNT/ML,Drug,NDC,00002751001\n" +
			"40166274,insulin lispro 100 UNT/ML Injectable Solution,Drug,RxNorm,1652639\n" +
			"1545958,atorvastatin,Drug,RxNorm,83367\n" +
			"9201,Inpatient Visit,Visit,Visit,IP\n" +
			"8507,MALE,Gender,Gender,M\n",
	})
	m, err := NewCodeMap(CodeRules{{Pattern: `ICD10CM//(.*)`, System: "ICD10", Code: "$1"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenOMOP(dir, CodeMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.CodeDescriptions(context.Background()); err == nil {
		t.Error("CodeDescriptions before reading: no error")
	}
	readAll(t, r)
	rows := r.Stats().Rows
	got, err := r.CodeDescriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []CodeInfo{
		{Code: "ICD10//E11.9", Description: "Type 2 diabetes mellitus without complications"},
		{Code: "NDC//00002751001", Description: "Insulin Lispro 100 UNT/ML"},
		{Code: "RXNORM//1545958", Description: "atorvastatin"},
		{Code: "VISIT//9201", Description: "Inpatient Visit"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("descriptions\n%+v\nwant\n%+v", got, want)
	}
	if r.Stats().Rows != rows {
		t.Errorf("rows %d after CodeDescriptions, %d before", r.Stats().Rows, rows)
	}

	// Without a concept table there is nothing to describe.
	r2, err := OpenOMOP(smallOMOP(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	readAll(t, r2)
	if got, err := r2.CodeDescriptions(context.Background()); got != nil || err != nil {
		t.Errorf("no concept table: %v, %v", got, err)
	}
}

// TestMEDSCodeDescriptions maps a MEDS dataset's codes.parquet through the code
// map as its events are: community codes become fedclaims' codes with their
// descriptions and parents, dropped codes vanish, and the first of two source
// codes that map to one code describes it.
func TestMEDSCodeDescriptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "meds")
	codes := []CodeInfo{
		{Code: "DIAGNOSIS//ICD//10//E039", Description: "Hypothyroidism, unspecified", Parents: []string{"DIAGNOSIS//ICD//10//E03"}},
		{Code: "DIAGNOSIS//ICD//10//E03.9", Description: "a second spelling"},
		{Code: "TRANSFER_TO//ED", Description: "transfer"},
		{Code: "LAB//51221//%", Description: "Hematocrit"},
	}
	writeAll(t, dir, mimicPatients(), Codes(codes))
	m, err := NewCodeMap(CodeRules{{Pattern: `TRANSFER_TO//.*`, Drop: true}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenMEDS(dir, CodeMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.CodeDescriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []CodeInfo{
		{Code: "ICD10CM//E03.9", Description: "Hypothyroidism, unspecified", Parents: []string{"ICD10CM//E03"}},
		{Code: "LAB//51221//%", Description: "Hematocrit"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("descriptions\n%+v\nwant\n%+v", got, want)
	}
}
