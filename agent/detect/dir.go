package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultRulesDir is where operators put rule files that add to or
// override the shipped ones.
const DefaultRulesDir = "/etc/hwheal/rules.d"

// ReadDir reads the rule files of dir: every regular *.yaml file not
// starting with a dot, in name order, each named by its path so that
// errors point at it. A dir that does not exist is an error wrapping
// fs.ErrNotExist.
func ReadDir(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read rule directory %s: %w", dir, err)
	}
	var out []File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".yaml") || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		st, err := os.Stat(p) // follows symlinks, as configuration managers make them
		if err != nil {
			return nil, fmt.Errorf("read rule file %s: %w", p, err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read rule file %s: %w", p, err)
		}
		out = append(out, File{Name: p, Data: data})
	}
	return out, nil
}

// LoadDir loads the shipped rules with the rule files of dir applied over
// them (see LoadFiles), and returns the paths of dir's files it read. A
// dir that does not exist adds nothing: a fresh install has none.
func LoadDir(dir string) (*RuleSet, []string, error) {
	files := BuiltinFiles()
	local, err := ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	names := make([]string, len(local))
	for i, f := range local {
		names[i] = f.Name
	}
	rs, err := LoadFiles(append(files, local...)...)
	if err != nil {
		return nil, names, err
	}
	return rs, names, nil
}
