package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/collector/webhook"
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
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file configures nothing
		}
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return cfg, fmt.Errorf("%s:%d: the top level must be a mapping (webhooks: ...)", name, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
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
