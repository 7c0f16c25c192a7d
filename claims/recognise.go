package claims

import "strings"

// Recognise is the built-in part of CodeMap: it returns code in fedclaims' form
// when it is written in a convention fedclaims knows, and code itself otherwise.
// The conventions are those of the MEDS datasets people already have, so that a
// dataset from a community ETL reads as diagnoses, procedures and drugs rather
// than as "other":
//
//	fedclaims' own codes (a known system, MEDS_*)  kept as they are
//	MIMIC-IV MEDS ETL
//	  DIAGNOSIS//ICD//10//E039      ICD10CM//E03.9
//	  DIAGNOSIS//ICD//9//4019       ICD9CM//401.9
//	  PROCEDURE//ICD//10//0DTJ4ZZ   ICD10PCS//0DTJ4ZZ
//	  PROCEDURE//ICD//9//3893       ICD9PROC//38.93
//	  MEDICATION//START//<drug>     DRUG//<DRUG> (upper-cased, spaces collapsed)
//	  MEDICATION//<drug>//Administered (eMAR)  DRUG//<DRUG>
//	  LAB//<itemid>//<unit>         kept (LAB is a known system)
//	OMOP->MEDS ETL, vocabulary_id/concept_code
//	  ICD10CM/E11.9, ICD10/..., ICD9CM/401.9, ICD9Proc/38.93, ICD10PCS/...
//	  RxNorm/197361 and RxNorm Extension/...  RXNORM//...
//	  NDC/..., ATC/..., SNOMED/..., LOINC/..., CPT4/..., HCPCS/...
//	  Gender/F, Gender/M            GENDER//F, GENDER//M
//	  Visit/IP                      VISIT//IP
//
// ICD codes come out dotted, as fedclaims stores them, so that the hierarchy
// roll-up (Parent) works. Everything else (MEDICATION//STOP//..., transfers,
// DRG codes, other vocabularies) is kept verbatim as its own code, of kind other.
func Recognise(code string) string {
	if knownCode(code) {
		return code
	}
	if c, ok := mimicCode(code); ok {
		return c
	}
	if c, ok := omopCode(code); ok {
		return c
	}
	return code
}

// knownCode reports whether code is already in fedclaims' form.
func knownCode(code string) bool {
	if strings.HasPrefix(code, "MEDS_") {
		return true
	}
	sys := System(code)
	return sys != "" && KnownSystem(sys)
}

// mimicCode recognises the MIMIC-IV MEDS ETL's codes.
func mimicCode(code string) (string, bool) {
	parts := strings.Split(code, Separator)
	switch {
	case len(parts) == 4 && parts[1] == "ICD" && parts[3] != "":
		var sys string
		switch {
		case parts[0] == "DIAGNOSIS" && parts[2] == "10":
			sys = SystemICD10CM
		case parts[0] == "DIAGNOSIS" && parts[2] == "9":
			sys = SystemICD9CM
		case parts[0] == "PROCEDURE" && parts[2] == "10":
			sys = SystemICD10PCS
		case parts[0] == "PROCEDURE" && parts[2] == "9":
			sys = SystemICD9Proc
		default:
			return "", false
		}
		return canonicalCode(sys, parts[3]), true
	case len(parts) == 3 && parts[0] == "MEDICATION":
		name := parts[2]
		switch {
		case parts[1] == "START":
		case strings.EqualFold(strings.TrimSpace(parts[2]), "Administered"):
			name = parts[1]
		default:
			return "", false
		}
		if name = drugName(name); name == "" {
			return "", false
		}
		return SystemDrug + Separator + name, true
	}
	return "", false
}

// drugName is a drug name as a code value: upper case, inner spaces collapsed.
func drugName(s string) string {
	return strings.ToUpper(strings.Join(strings.Fields(s), " "))
}

// omopCode recognises the OMOP->MEDS ETL's vocabulary_id/concept_code codes.
func omopCode(code string) (string, bool) {
	i := strings.IndexByte(code, '/')
	if i <= 0 || i+1 >= len(code) || code[i+1] == '/' || strings.Contains(code, Separator) {
		return "", false
	}
	value := strings.TrimSpace(code[i+1:])
	if value == "" {
		return "", false
	}
	var sys string
	switch strings.ToUpper(strings.TrimSpace(code[:i])) {
	case "ICD10CM":
		sys = SystemICD10CM
	case "ICD10":
		sys = SystemICD10
	case "ICD9CM":
		sys = SystemICD9CM
	case "ICD9PROC":
		sys = SystemICD9Proc
	case "ICD10PCS":
		sys = SystemICD10PCS
	case "RXNORM", "RXNORM EXTENSION":
		// RxNorm Extension's codes (OMOP...) cannot collide with RxNorm's numbers.
		sys = SystemRxNorm
	case "NDC":
		sys = SystemNDC
	case "ATC":
		sys = SystemATC
	case "SNOMED":
		sys = SystemSNOMED
	case "LOINC":
		sys = SystemLOINC
	case "CPT4":
		sys = SystemCPT4
	case "HCPCS":
		sys = SystemHCPCS
	case "GENDER":
		switch v := strings.ToUpper(value); v {
		case "F", "M":
			return SystemGender + Separator + v, true
		}
		return "", false
	case "VISIT":
		sys = SystemVisit
	default:
		return "", false
	}
	return canonicalCode(sys, value), true
}

// canonicalCode writes value as fedclaims stores codes of sys: ICD diagnosis codes
// dotted after the category (E119 -> E11.9; E-codes of ICD-9 after the 4th
// character), ICD-9 procedure codes after the 2nd digit, NDCs in 11 digits, and
// the alphanumeric systems upper-cased. A value of the wrong shape for its system
// is kept, trimmed, so that nothing is lost.
func canonicalCode(sys, value string) string {
	v := strings.TrimSpace(value)
	switch sys {
	case SystemICD10, SystemICD10CM, SystemICD9CM:
		u := strings.ToUpper(strings.ReplaceAll(v, ".", ""))
		cut := 3
		switch {
		case sys == SystemICD9CM && isICD9(u):
			if u[0] == 'E' {
				cut = 4
			}
		case sys != SystemICD9CM && isICD10(u):
		default:
			return sys + Separator + v
		}
		if len(u) > cut {
			u = u[:cut] + "." + u[cut:]
		}
		return sys + Separator + u
	case SystemICD9Proc:
		if u := strings.ReplaceAll(v, ".", ""); (len(u) == 3 || len(u) == 4) && allDigits(u) {
			return sys + Separator + u[:2] + "." + u[2:]
		}
	case SystemNDC:
		if n, ok := ndc11(v); ok {
			return sys + Separator + n
		}
	case SystemICD10PCS, SystemATC, SystemCPT4, SystemHCPCS:
		return sys + Separator + strings.ToUpper(v)
	}
	return sys + Separator + v
}
