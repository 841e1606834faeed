package collector

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/collector/webhook"
	"github.com/hwheal/hwheal/pkg/yamldoc"
)

// fileConfig is what the collector's YAML configuration file holds. Flags
// keep the process settings (addresses, store, directories); the file
// holds what operators write lists of.
type fileConfig struct {
	Webhooks webhook.Config
}

// loadFileConfig reads the collector's configuration file; errors name the
// file and line.
func loadFileConfig(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("read config: %w", err)
	}
	return parseFileConfig(data, path)
}

func parseFileConfig(data []byte, name string) (fileConfig, error) {
	var cfg fileConfig
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		return cfg, fmt.Errorf("%s:%d: %s", name, yerr.Line, yerr.Msg)
	}
	if root == nil {
		return cfg, nil // an empty file configures nothing
	}
	if root.Kind != yaml.MappingNode {
		return cfg, fmt.Errorf("%s:%d: the top level must be a mapping (webhooks: ...)", name, root.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			return cfg, fmt.Errorf("%s:%d: duplicate key %q (first at line %d)", name, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "webhooks":
			targets, err := webhook.ParseTargets(v, name)
			if err != nil {
				return cfg, err
			}
			cfg.Webhooks.Targets = targets
		default:
			return cfg, fmt.Errorf("%s:%d: unknown key %q (want webhooks)", name, k.Line, k.Value)
		}
	}
	return cfg, nil
}
