package study

import (
	"errors"
	"fmt"

	"github.com/fedclaims/fedclaims/sweep"
)

// Config is a study file: a sweep file (its fields mean what they mean there; the
// presets are the study's scales, pretrained in the sweep's mode on one budget)
// and the study's own arms. Unknown fields are errors; relative paths are
// relative to the file's directory.
//
//	mode: federated               # the scales' pretraining: federated or central
//	presets: [{name: s1, hidden: 32, layers: 2, heads: 2}, ...]
//	budget: {tokens: 3000000}     # one budget for every scale (a federation's total)
//	data:
//	  synthetic: {hospitals: 3, pretrain_only: 3, patients: 3000, seed: 1}
//	...                           # tasks, seed, margin, alpha, pretrain, finetune, eval, federated
//	central: s2                   # this scale again, centralised, on the same tokens
//	site_alone: {scale: s2, site: h03}   # one labelled site alone (default: the smallest)
//	controls: {scale: s2, shuffled_visits: true, temporal_strength_0: true}
//	recipe: {scale: s2}           # each recipe change measured on validation
//	label_efficiency: {scale: s3, sizes: [100, 300, 1000, 3000]}
//	primary: 4                    # primary tasks: the most prevalent in training
type Config struct {
	sweep.Config `yaml:",inline"`

	// Central names the scale pretrained again on the pooled training data.
	Central string `yaml:"central" json:"central"`
	// SiteAlone is one labelled site's own encoder.
	SiteAlone SiteAlone `yaml:"site_alone" json:"site_alone"`
	Controls  Controls  `yaml:"controls" json:"controls"`
	Recipe    Recipe    `yaml:"recipe" json:"recipe"`
	// LabelEfficiency fits heads on nested subsets of the labelled patients.
	LabelEfficiency LabelEfficiency `yaml:"label_efficiency" json:"label_efficiency"`
	// Primary is the number of primary tasks: those with the highest prevalence in
	// the training split, which the floors are judged on (the test split never
	// chooses them).
	Primary int `yaml:"primary" json:"primary"`
}

// SiteAlone pretrains Scale on one labelled site's training split alone, with the
// federation's vocabulary and budget.
type SiteAlone struct {
	Scale string `yaml:"scale" json:"scale"`
	// Site is the site's directory name (default: the labelled site with the
	// fewest patients).
	Site string `yaml:"site" json:"site,omitempty"`
}

// Controls say where a gain comes from: the same pipeline with each history's
// visits in shuffled order, and with data generated at temporal_strength 0 (no
// order or recency effects; synthetic data only). Both pretrain Scale centrally.
type Controls struct {
	Scale             string `yaml:"scale" json:"scale"`
	ShuffledVisits    *bool  `yaml:"shuffled_visits" json:"shuffled_visits"`
	TemporalStrength0 *bool  `yaml:"temporal_strength_0" json:"temporal_strength_0"`
}

// Recipe measures each change of the recipe on the validation split: Scale
// centrally without time embeddings, and without random-cut windows, against
// the full recipe (the central arm when Scale is Central), and the head's
// pooling.
type Recipe struct {
	Scale string `yaml:"scale" json:"scale"`
}

// LabelEfficiency is the label-efficiency curve of Scale's federated encoder.
type LabelEfficiency struct {
	Scale string `yaml:"scale" json:"scale"`
	Sizes []int  `yaml:"sizes" json:"sizes"`
}

// DefaultConfig is what a study file that gives only its scales, budget and data
// means, before the defaults that depend on them (the scales of the arms, the
// controls) which Prepare fills in; `fedclaims study` decodes the file onto it
// (internal/config) and then calls Prepare.
func DefaultConfig() Config {
	return Config{Config: sweep.DefaultConfig()}
}

// Prepare fills in the defaults a file left out, checks every field and makes
// relative paths relative to dir, the file's directory.
func (c *Config) Prepare(dir string) error {
	c.Defaults()
	c.defaults()
	if err := c.Validate(); err != nil {
		return err
	}
	c.Resolve(dir)
	return nil
}

func (c *Config) defaults() {
	largest := ""
	if n := len(c.Presets); n > 0 {
		largest = c.Presets[n-1].Name
	}
	for _, s := range []*string{&c.Central, &c.SiteAlone.Scale, &c.Controls.Scale, &c.Recipe.Scale} {
		if *s == "" {
			*s = largest
		}
	}
	if c.LabelEfficiency.Scale == "" {
		c.LabelEfficiency.Scale = largest
	}
	if c.LabelEfficiency.Sizes == nil {
		c.LabelEfficiency.Sizes = []int{100, 300, 1000, 3000}
	}
	t := true
	if c.Controls.ShuffledVisits == nil {
		c.Controls.ShuffledVisits = &t
	}
	if c.Controls.TemporalStrength0 == nil {
		v := c.Data.Synthetic != nil
		c.Controls.TemporalStrength0 = &v
	}
	if c.Primary == 0 {
		c.Primary = 4
	}
}

// Validate reports the first field that makes c unusable, by its path in the file.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	names := map[string]bool{}
	for _, p := range c.Presets {
		names[p.Name] = true
	}
	for _, f := range []struct{ field, v string }{
		{"central", c.Central}, {"site_alone.scale", c.SiteAlone.Scale}, {"controls.scale", c.Controls.Scale},
		{"recipe.scale", c.Recipe.Scale}, {"label_efficiency.scale", c.LabelEfficiency.Scale},
	} {
		if !names[f.v] {
			return fmt.Errorf("field %s: %q is not one of the presets", f.field, f.v)
		}
	}
	if c.Budget.Steps > 0 {
		return errors.New("field budget: a study compares scales and modes at equal tokens: give tokens or tokens_per_param")
	}
	for i, p := range c.Presets {
		if p.Budget != nil {
			return fmt.Errorf("field presets[%d].budget: every scale of a study has the study's budget", i)
		}
	}
	if *c.Controls.TemporalStrength0 && c.Data.Synthetic == nil {
		return errors.New("field controls.temporal_strength_0: needs data.synthetic (the generator's knob); set it false for real sites")
	}
	if c.Data.Synthetic == nil && c.SiteAlone.Site == "" && len(c.Data.Dirs) < 2 {
		return errors.New("field site_alone: a site alone needs at least two labelled sites")
	}
	if c.Data.Synthetic != nil && c.Data.Synthetic.Hospitals < 2 {
		return errors.New("field data.synthetic.hospitals: a study needs at least two labelled sites (one is compared with its site-alone encoder)")
	}
	for i, n := range c.LabelEfficiency.Sizes {
		if n < 1 || (i > 0 && n <= c.LabelEfficiency.Sizes[i-1]) {
			return fmt.Errorf("field label_efficiency.sizes[%d]: %d: sizes must be positive and increasing", i, n)
		}
	}
	if c.Primary < 1 {
		return fmt.Errorf("field primary: %d must be positive", c.Primary)
	}
	return nil
}
