package agent

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/agent/actuate"
	"github.com/hwheal/hwheal/pkg/yamldoc"
)

// FileConfig is what the agent's configuration file (--config) holds.
// Flags keep the process settings (addresses, directories, sources); the
// file holds what operators write lists of. hwheal-agent.example.yaml
// beside this file is a commented example.
type FileConfig struct {
	// Remediation is nil when the file has no remediation section.
	Remediation *actuate.Remediation
}

// LoadConfigFile reads the agent's configuration file; errors name the
// file and line.
func LoadConfigFile(path string) (FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfigFile(data, path)
}

// ParseConfigFile parses a configuration file's content; name is used in
// errors. Unknown keys are refused. An empty file configures nothing.
func ParseConfigFile(data []byte, name string) (FileConfig, error) {
	var cfg FileConfig
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		return cfg, fmt.Errorf("%s:%d: %s", name, yerr.Line, yerr.Msg)
	}
	if root == nil {
		return cfg, nil
	}
	if root.Kind != yaml.MappingNode {
		return cfg, fmt.Errorf("%s:%d: the top level is a %s, want a mapping (remediation: ...)", name, root.Line, yamldoc.Kind(root))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			return cfg, fmt.Errorf("%s:%d: duplicate key %q (first at line %d)", name, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "remediation":
			r, err := actuate.ParseRemediation(v, name)
			if err != nil {
				return cfg, err
			}
			cfg.Remediation = r
		default:
			return cfg, fmt.Errorf("%s:%d: unknown key %q (want remediation)", name, k.Line, k.Value)
		}
	}
	return cfg, nil
}
