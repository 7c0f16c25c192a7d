package synth

// The clinical model: the conditions and drugs the generator simulates, the codes
// each is recorded under, and the rates that tie them together. Codes are real
// ICD-10 and ATC codes from the embedded catalog (a test checks every one); the
// rates are rough, chosen so that a 5,000-patient hospital shows each default task
// at a plausible prevalence, not fitted to any population.

type cond uint8

const (
	condHTN cond = iota
	condObesity
	condDyslipidaemia
	condSmoking
	condT2D
	condRetinopathy
	condCKD
	condIHD
	condAF
	condHF
	condTIA
	condStroke
	condDepression
	condDementia
	condGERD
	condMSK
	condOsteoporosis
	condFracture
	condCOPD
	condCancer
	condVTE
	nCond
)

// condition describes how one condition is coded. Code lists hold undotted ICD-10
// codes; weights, when present, say how often each is chosen.
type condition struct {
	name    string
	codes   []string
	weights []float64
	// later, when set, replaces codes once the acute phase (recodeMonths) is over,
	// e.g. sequelae of cerebral infarction after a stroke.
	later []string
	// prodrome lists the symptom codes recorded while the condition is brewing; a
	// condition with a prodrome usually passes through it before onset.
	prodrome []string
	// acute conditions bring the patient to hospital the month they start.
	acute bool
	// detect is the chance that a visit after onset records it for the first time.
	detect float64
	// recode is the chance that each later visit records it again; recodeMonths > 0
	// limits that to the months after diagnosis unless later is set.
	recode       float64
	recodeMonths int
	// chronic conditions raise the visit rate once diagnosed.
	chronic bool
}

var conditionTable = [nCond]condition{
	condHTN:           {name: "hypertension", codes: []string{"I10", "I119"}, weights: []float64{9, 1}, detect: 0.5, recode: 0.75, chronic: true},
	condObesity:       {name: "obesity", codes: []string{"E669", "E6601", "E663"}, weights: []float64{6, 2, 2}, detect: 0.2, recode: 0.2},
	condDyslipidaemia: {name: "dyslipidaemia", codes: []string{"E785", "E7800", "E781", "E782"}, weights: []float64{5, 3, 1, 1}, detect: 0.4, recode: 0.7, chronic: true},
	condSmoking:       {name: "tobacco use", codes: []string{"Z720", "F1720"}, weights: []float64{1, 1}, detect: 0.2, recode: 0.1},
	condT2D: {name: "type 2 diabetes", codes: []string{"E119", "E1165", "E118", "E1169"}, weights: []float64{7, 1.5, 1, 0.5},
		prodrome: []string{"R739", "R350", "R631"}, detect: 0.6, recode: 0.85, chronic: true},
	condRetinopathy: {name: "diabetic retinopathy", codes: []string{"E1131", "E113", "H36"}, weights: []float64{5, 3, 2}, detect: 0.3, recode: 0.5},
	condCKD: {name: "chronic kidney disease", codes: []string{"N1830", "N184", "N185", "N186", "N189"},
		prodrome: []string{"R809", "R944"}, detect: 0.5, recode: 0.8, chronic: true},
	condIHD: {name: "ischaemic heart disease", codes: []string{"I2510", "I209", "I259", "I219"}, weights: []float64{4, 3, 2, 1}, detect: 0.7, recode: 0.7, chronic: true},
	condAF:  {name: "atrial fibrillation", codes: []string{"I4891", "I480", "I4820", "I489"}, weights: []float64{4, 3, 2, 1}, detect: 0.5, recode: 0.8, chronic: true},
	condHF:  {name: "heart failure", codes: []string{"I509", "I5022", "I5032", "I501"}, weights: []float64{5, 2, 2, 1}, prodrome: []string{"R0600", "R600", "R0602"}, detect: 0.7, recode: 0.85, chronic: true},
	condTIA: {name: "transient ischaemic attack", codes: []string{"G459"}, acute: true, detect: 1, recode: 0.3, recodeMonths: 2},
	condStroke: {name: "ischaemic stroke", codes: []string{"I639", "I6350", "I634"}, weights: []float64{5, 3, 2},
		later: []string{"I693", "I6930"}, acute: true, detect: 1, recode: 0.6, recodeMonths: 1, chronic: true},
	condDepression: {name: "depression", codes: []string{"F329", "F339", "F321"}, weights: []float64{6, 2, 2}, detect: 0.4, recode: 0.6, chronic: true},
	// Dementia's code depends on the history: vascular after a stroke (see dementiaCode).
	condDementia: {name: "dementia", codes: []string{"G309", "G301", "F0390", "F0391", "F0150", "F0151"},
		prodrome: []string{"R413", "R410", "R4181", "G3184"}, detect: 0.5, recode: 0.8, chronic: true},
	condGERD: {name: "gastro-oesophageal reflux", codes: []string{"K219", "K210"}, weights: []float64{3, 1}, detect: 0.6, recode: 0.4, chronic: true},
	condMSK:  {name: "osteoarthritis or back pain", codes: []string{"M545", "M179", "M169", "M159"}, weights: []float64{4, 3, 2, 1}, detect: 0.7, recode: 0.4},
	// Osteoporosis is coded with a current fracture (M80) when one is recent.
	condOsteoporosis: {name: "osteoporosis", codes: []string{"M810", "M818", "M8000", "M8008"}, weights: []float64{6, 4, 0, 0},
		prodrome: []string{"R296", "Z1382"}, detect: 0.5, recode: 0.7, chronic: true},
	condFracture: {name: "fragility fracture", codes: []string{"S7200", "S720", "S320", "S220", "S525"}, weights: []float64{3, 2, 2, 2, 2},
		acute: true, detect: 1, recode: 0.7, recodeMonths: 3},
	condCOPD: {name: "COPD", codes: []string{"J449", "J441", "J439"}, weights: []float64{6, 2, 2}, detect: 0.5, recode: 0.7, chronic: true},
	// The cancer site depends on sex (see cancerWeights).
	condCancer: {name: "cancer", codes: []string{"C189", "C3490", "C5091", "C61", "C169", "C220", "C259"},
		detect: 0.8, recode: 0.9, chronic: true},
	condVTE: {name: "venous thromboembolism", codes: []string{"I8240", "I2699", "I269"}, weights: []float64{6, 2, 2},
		acute: true, detect: 1, recode: 0.6, recodeMonths: 6},
}

var (
	cancerWeightsF = []float64{3, 2, 4, 0, 2, 1, 1}
	cancerWeightsM = []float64{3, 4, 0, 3, 3, 1.5, 1}
)

// dementiaCode picks the dementia code index: vascular after a stroke, Alzheimer's
// or unspecified otherwise.
func dementiaCode(afterStroke bool, u float64) int {
	if afterStroke {
		if u < 0.75 {
			return 4 + int(u*8)%2 // F01.50, F01.51
		}
		return 2
	}
	switch {
	case u < 0.45:
		return 0
	case u < 0.55:
		return 1
	case u < 0.9:
		return 2
	}
	return 3
}

type drug uint8

const (
	drugStatin drug = iota
	drugMetformin
	drugDPP4
	drugSGLT2
	drugInsulin
	drugARB
	drugCCB
	drugBeta
	drugLoop
	drugMRA
	drugDOAC
	drugWarfarin
	drugAntiplatelet
	drugPPI
	drugH2
	drugNSAID
	drugSteroid
	drugBisphosphonate
	drugAntidementia
	drugAntidepressant
	drugInhaler
	drugChemo
	drugAntiemetic
	drugOpioid
	nDrug
)

// medication lists a drug class's ATC level-5 substances. Each hospital prefers some
// substances over others. stop is the monthly chance of discontinuing.
type medication struct {
	name string
	atc  []string
	stop float64
	// since is the first year the class is prescribed (SGLT2 inhibitors reached
	// the market in 2014); zero for always.
	since int
}

var drugTable = [nDrug]medication{
	drugStatin:         {name: "statin", atc: []string{"C10AA01", "C10AA03", "C10AA05", "C10AA07", "C10AA08"}, stop: 0.008},
	drugMetformin:      {name: "metformin", atc: []string{"A10BA02"}, stop: 0.01},
	drugDPP4:           {name: "DPP-4 inhibitor", atc: []string{"A10BH01", "A10BH02", "A10BH04", "A10BH05", "A10BH08"}, stop: 0.008},
	drugSGLT2:          {name: "SGLT2 inhibitor", atc: []string{"A10BK01", "A10BK02", "A10BK03"}, stop: 0.01, since: 2014},
	drugInsulin:        {name: "insulin", atc: []string{"A10AE04", "A10AB05"}, stop: 0.005},
	drugARB:            {name: "angiotensin receptor blocker", atc: []string{"C09CA01", "C09CA03", "C09CA06", "C09CA07", "C09CA08", "C09CA09"}, stop: 0.006},
	drugCCB:            {name: "calcium channel blocker", atc: []string{"C08CA01", "C08CA05"}, stop: 0.006},
	drugBeta:           {name: "beta blocker", atc: []string{"C07AB07", "C07AG02"}, stop: 0.008},
	drugLoop:           {name: "loop diuretic", atc: []string{"C03CA01", "C03CA04"}, stop: 0.01},
	drugMRA:            {name: "mineralocorticoid antagonist", atc: []string{"C03DA01"}, stop: 0.01},
	drugDOAC:           {name: "direct oral anticoagulant", atc: []string{"B01AF01", "B01AF02", "B01AF03", "B01AE07"}, stop: 0.01},
	drugWarfarin:       {name: "warfarin", atc: []string{"B01AA03"}, stop: 0.01},
	drugAntiplatelet:   {name: "antiplatelet", atc: []string{"B01AC06", "B01AC04"}, stop: 0.008},
	drugPPI:            {name: "proton-pump inhibitor", atc: []string{"A02BC01", "A02BC02", "A02BC03", "A02BC04", "A02BC05", "A02BC08"}, stop: 0.04},
	drugH2:             {name: "H2 blocker", atc: []string{"A02BA03"}, stop: 0.05},
	drugNSAID:          {name: "NSAID", atc: []string{"M01AE01", "M01AB05", "M01AH01"}, stop: 0.35},
	drugSteroid:        {name: "systemic corticosteroid", atc: []string{"H02AB06"}, stop: 0.3},
	drugBisphosphonate: {name: "bone antiresorptive", atc: []string{"M05BA04", "M05BA07", "M05BX04", "A11CC03"}, stop: 0.02},
	drugAntidementia:   {name: "anti-dementia drug", atc: []string{"N06DA02", "N06DX01", "N06DA04"}, stop: 0.01},
	drugAntidepressant: {name: "antidepressant", atc: []string{"N06AB06", "N06AB10", "N06AX11"}, stop: 0.03},
	drugInhaler:        {name: "COPD inhaler", atc: []string{"R03BB04", "R03AK06"}, stop: 0.01},
	drugChemo:          {name: "chemotherapy", atc: []string{"L01BC02", "L01XA03", "L01CD01", "L01BC06"}, stop: 0.15},
	drugAntiemetic:     {name: "antiemetic", atc: []string{"A04AA01", "A04AA05"}, stop: 0.15},
	drugOpioid:         {name: "opioid", atc: []string{"N02AA05"}, stop: 0.1},
}

// procedure is one code of the generator's own procedure list (there is no free,
// international procedure classification to take them from).
type procedure struct{ code, desc string }

const (
	procHbA1c = iota
	procGlucose
	procFundus
	procPhotocoag
	procLipid
	procCreatinine
	procUrinalysis
	procDialysis
	procBNP
	procEcho
	procChestXray
	procECG
	procHolter
	procINR
	procCoronaryAngio
	procPCI
	procCTHead
	procMRIBrain
	procThrombolysis
	procCarotidUS
	procRehab
	procCognitive
	procDXA
	procSpineXray
	procHipXray
	procFractureFixation
	procBiopsy
	procCTChest
	procCTAbdomen
	procPET
	procChemoInfusion
	procRadiotherapy
	procEndoscopy
	procSpirometry
	procVenousUS
	// Background procedures follow; they are drawn for any visit.
	procBackground
)

var procedureTable = []procedure{
	procHbA1c:            {"HBA1C", "Glycated haemoglobin (HbA1c)"},
	procGlucose:          {"GLUCOSE", "Blood glucose"},
	procFundus:           {"FUNDUS", "Fundoscopy"},
	procPhotocoag:        {"PHOTOCOAG", "Retinal laser photocoagulation"},
	procLipid:            {"LIPID", "Lipid panel"},
	procCreatinine:       {"CREAT", "Serum creatinine and eGFR"},
	procUrinalysis:       {"UA", "Urinalysis"},
	procDialysis:         {"HD", "Haemodialysis session"},
	procBNP:              {"BNP", "B-type natriuretic peptide"},
	procEcho:             {"ECHO", "Transthoracic echocardiography"},
	procChestXray:        {"CXR", "Chest radiograph"},
	procECG:              {"ECG", "12-lead electrocardiogram"},
	procHolter:           {"HOLTER", "24-hour Holter monitoring"},
	procINR:              {"INR", "Prothrombin time (INR)"},
	procCoronaryAngio:    {"CAG", "Coronary angiography"},
	procPCI:              {"PCI", "Percutaneous coronary intervention"},
	procCTHead:           {"CT_HEAD", "CT of the head"},
	procMRIBrain:         {"MRI_BRAIN", "MRI of the brain"},
	procThrombolysis:     {"TPA", "Intravenous thrombolysis"},
	procCarotidUS:        {"CAROTID_US", "Carotid ultrasound"},
	procRehab:            {"REHAB", "Rehabilitation session"},
	procCognitive:        {"COGTEST", "Cognitive function test"},
	procDXA:              {"DXA", "Bone densitometry (DXA)"},
	procSpineXray:        {"XR_SPINE", "Spine radiograph"},
	procHipXray:          {"XR_HIP", "Hip radiograph"},
	procFractureFixation: {"ORIF", "Open reduction and internal fixation"},
	procBiopsy:           {"BIOPSY", "Tissue biopsy"},
	procCTChest:          {"CT_CHEST", "CT of the chest"},
	procCTAbdomen:        {"CT_ABD", "CT of the abdomen"},
	procPET:              {"PET", "PET-CT"},
	procChemoInfusion:    {"CHEMO_IV", "Intravenous chemotherapy administration"},
	procRadiotherapy:     {"RT", "Radiotherapy fraction"},
	procEndoscopy:        {"EGD", "Upper gastrointestinal endoscopy"},
	procSpirometry:       {"SPIRO", "Spirometry"},
	procVenousUS:         {"VENOUS_US", "Venous compression ultrasound"},
	procBackground + 0:   {"CBC", "Complete blood count"},
	procBackground + 1:   {"LFT", "Liver function tests"},
	procBackground + 2:   {"ELECTROLYTES", "Serum electrolytes"},
	procBackground + 3:   {"CRP", "C-reactive protein"},
	procBackground + 4:   {"US_ABD", "Abdominal ultrasound"},
	procBackground + 5:   {"TSH", "Thyroid-stimulating hormone"},
	procBackground + 6:   {"IV_DRIP", "Intravenous infusion"},
	procBackground + 7:   {"INJECTION", "Intramuscular injection"},
	procBackground + 8:   {"VACC_FLU", "Influenza vaccination"},
	procBackground + 9:   {"XR_KNEE", "Knee radiograph"},
	procBackground + 10:  {"WOUND", "Wound dressing"},
	procBackground + 11:  {"COLONOSCOPY", "Colonoscopy"},
	procBackground + 12:  {"CATARACT", "Cataract surgery"},
	procBackground + 13:  {"PSA", "Prostate-specific antigen"},
	procBackground + 14:  {"MAMMO", "Mammography"},
	procBackground + 15:  {"PAP", "Cervical cytology"},
	procBackground + 16:  {"AUDIO", "Audiometry"},
	procBackground + 17:  {"TONOMETRY", "Intraocular pressure measurement"},
	procBackground + 18:  {"NERVE_BLOCK", "Nerve block injection"},
	procBackground + 19:  {"PHYSIO", "Physiotherapy session"},
	procBackground + 20:  {"SUTURE", "Wound suture"},
	procBackground + 21:  {"EEG", "Electroencephalogram"},
	procBackground + 22:  {"HCV_AB", "Hepatitis C antibody test"},
	procBackground + 23:  {"STOOL_OB", "Faecal occult blood test"},
	procBackground + 24:  {"ALLERGY_IGE", "Specific IgE panel"},
	procBackground + 25:  {"CT_SINUS", "CT of the paranasal sinuses"},
	procBackground + 26:  {"MRI_SPINE", "MRI of the spine"},
	procBackground + 27:  {"HOME_VISIT", "Home medical care visit"},
	procBackground + 28:  {"NUTRITION", "Nutritional guidance"},
	procBackground + 29:  {"OXYGEN", "Home oxygen therapy management"},
}

// commonICD and commonATC are everyday codes (infections, aches, laxatives,
// antihistamines) put at the head of the background frequency ranking, so the
// commonest background codes look like a real claims database's.
var commonICD = []string{
	"J069", "J209", "J029", "J309", "K5900", "R05", "R51", "H109", "L309", "N390",
	"B351", "K2970", "J459", "H524", "E559", "D649", "E039", "N400", "H259", "L209",
	"B029", "A09", "K529", "R109",
}

var commonATC = []string{
	"A02AA02", "N02BE01", "J01CA04", "R06AX26", "R06AE07", "J01FA10", "J01DD16", "R05DA09",
	"A03FA03", "A06AB08", "D07AC01", "N05CF02", "M03BX09", "A05AA02", "G04CA02", "R03DC03",
	"H03AA01", "B03AA07", "N05BA01", "J05AB11",
}

// backgroundExclude keeps the background draws off every code system branch the
// model itself produces, so that the task labels come from the trajectories.
var backgroundExclude = []string{
	// Modelled conditions and their prodromes.
	"ICD10//I10", "ICD10//I11", "ICD10//E66", "ICD10//E78", "ICD10//Z72", "ICD10//F17",
	"ICD10//E1", "ICD10//H36", "ICD10//N18", "ICD10//I2", "ICD10//I48", "ICD10//I82", "ICD10//I50",
	"ICD10//G45", "ICD10//I6", "ICD10//F3", "ICD10//F0", "ICD10//G30", "ICD10//G31",
	"ICD10//K21", "ICD10//M54", "ICD10//M1", "ICD10//M80", "ICD10//M81", "ICD10//S",
	"ICD10//T", "ICD10//J44", "ICD10//J43", "ICD10//C", "ICD10//D0", "ICD10//R73", "ICD10//R35",
	"ICD10//R63", "ICD10//R06", "ICD10//R60", "ICD10//R80", "ICD10//R94", "ICD10//R41",
	"ICD10//R29", "ICD10//Z13", "ICD10//R00", "ICD10//Z51",
	// Chapters a claims sample of adults rarely holds: pregnancy, perinatal, external
	// causes and special purposes.
	"ICD10//O", "ICD10//P", "ICD10//U", "ICD10//V", "ICD10//W", "ICD10//X", "ICD10//Y",
	// Modelled drug classes.
	"ATC//C10", "ATC//A10", "ATC//C09", "ATC//C08", "ATC//C07", "ATC//C03", "ATC//B01",
	"ATC//A02B", "ATC//M01", "ATC//H02", "ATC//M05", "ATC//N06D", "ATC//N06A", "ATC//R03B",
	"ATC//R03AK", "ATC//L01", "ATC//A04", "ATC//N02A", "ATC//A11CC",
	// Veterinary products.
	"ATC//Q",
}
