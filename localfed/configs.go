package localfed

import (
	"fmt"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/internal/config"
	"github.com/fedclaims/fedclaims/site"
)

// LoadSiteConfig reads a site's file as `fedclaims site --config path` does (the
// environment included, no flags) and validates it: the in-process bench runs the
// agents Prepare configured exactly as the binary would.
func LoadSiteConfig(path string) (site.Config, error) {
	c := site.DefaultConfig()
	if err := config.Load(path, &c, config.Options{}); err != nil {
		return site.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return site.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadAggregatorConfig reads an aggregator's file as `fedclaims aggregator
// --config path` does and validates it.
func LoadAggregatorConfig(path string) (aggregator.Config, error) {
	c := aggregator.DefaultConfig()
	if err := config.Load(path, &c, config.Options{}); err != nil {
		return aggregator.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return aggregator.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
