package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/hashicorp/hcl"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/agent/local"
)

// flagKeys maps agent flags onto config keys where the names differ
// beyond dashes and underscores.
var flagKeys = map[string]string{"recursor": "recursors"}

// sources are where the configuration comes from, besides flags and the
// environment.
type sources struct {
	files []string
	dir   string
}

// loadConfig builds the agent configuration: defaults < config files (in
// order, then the config dir's files in lexical order) < CHORUS_*
// environment variables < flags. Unknown keys and values of the wrong type
// are errors naming the key.
func loadConfig(flags *pflag.FlagSet, src sources, dev bool) (agent.Config, error) {
	v := viper.New()
	def := agent.DefaultConfig()
	if dev {
		def.Bind = "127.0.0.1"
		def.LogLevel = "debug"
		def.GossipProfile = "local"
		def.EnableDebug = true // as Consul's -dev
		if def.NodeName == "" {
			def.NodeName = "dev"
		}
	}
	setDefaults(v, "", reflect.ValueOf(def))
	v.SetEnvPrefix("CHORUS")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	var services []local.ServiceDefinition
	files := append([]string(nil), src.files...)
	if src.dir != "" {
		entries, err := os.ReadDir(src.dir)
		if err != nil {
			return agent.Config{}, fmt.Errorf("config_dir: %w", err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && configFormat(e.Name()) != "" {
				names = append(names, filepath.Join(src.dir, e.Name()))
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	for _, f := range files {
		m, err := readConfigFile(f)
		if err != nil {
			return agent.Config{}, err
		}
		svcs, err := extractServices(m)
		if err != nil {
			return agent.Config{}, fmt.Errorf("%s: %w", f, err)
		}
		services = append(services, svcs...)
		if err := checkKeys(v, "", m); err != nil {
			return agent.Config{}, fmt.Errorf("%s: %w", f, err)
		}
		if err := v.MergeConfigMap(m); err != nil {
			return agent.Config{}, fmt.Errorf("%s: %w", f, err)
		}
	}
	if flags != nil {
		var err error
		flags.VisitAll(func(f *pflag.Flag) {
			key, ok := flagKeys[f.Name]
			if !ok {
				key = strings.ReplaceAll(f.Name, "-", "_")
			}
			if key == "config_file" || key == "config_dir" || key == "help" {
				return
			}
			if e := v.BindPFlag(key, f); e != nil && err == nil {
				err = e
			}
		})
		if err != nil {
			return agent.Config{}, err
		}
	}
	var cfg agent.Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return agent.Config{}, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	cfg.Services = services
	if dev {
		cfg.Dev = true
	}
	if err := cfg.Validate(); err != nil {
		return agent.Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// userMapKeys are keys whose values are maps of the user's own keys.
var userMapKeys = map[string]bool{"node_meta": true, "dns.service_ttls": true}

// checkKeys reports the first key of a config file (in sorted order) that
// the configuration does not have, with the nearest known key when one is
// close enough to be a typo. v knows every key from setDefaults.
func checkKeys(v *viper.Viper, prefix string, m map[string]any) error {
	names := slices.Sorted(maps.Keys(m))
	known := v.AllKeys()
	for _, k := range names {
		key := strings.ToLower(k)
		if prefix != "" {
			key = prefix + "." + key
		}
		if prefix == "" && (key == "service" || key == "services") || userMapKeys[key] {
			continue
		}
		if subs := asMaps(m[k]); subs != nil && hasKeyPrefix(known, key+".") {
			for _, sub := range subs {
				if err := checkKeys(v, key, sub); err != nil {
					return err
				}
			}
			continue
		}
		if slices.Contains(known, key) {
			continue
		}
		msg := fmt.Sprintf("unknown key %q", key)
		if near := nearest(key, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		return errors.New(msg)
	}
	return nil
}

// asMaps returns a nested block as maps: a map, or HCL's list of maps.
func asMaps(v any) []map[string]any {
	switch t := v.(type) {
	case map[string]any:
		return []map[string]any{t}
	case []map[string]any:
		return t
	}
	return nil
}

func hasKeyPrefix(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// nearest returns the known key closest to key by edit distance, if the
// distance is at most a third of key's length (at least 1, at most 3).
func nearest(key string, known []string) string {
	best, bestD := "", min(3, max(1, len(key)/3))+1
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// cleanDecodeError trims mapstructure's multi-line error into one line
// that still names every key.
func cleanDecodeError(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	s = strings.ReplaceAll(s, "decoding failed due to the following error(s):", "")
	return strings.Join(strings.Fields(s), " ")
}

// setDefaults registers every key of the config struct with its default,
// so that environment variables and UnmarshalExact know all keys.
func setDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		parts := strings.Split(f.Tag.Get("mapstructure"), ",")
		tag := parts[0]
		if tag == "" && slices.Contains(parts[1:], "squash") {
			setDefaults(v, prefix, rv.Field(i)) // its keys are this struct's
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := rv.Field(i)
		if f.Type.Kind() == reflect.Struct {
			setDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}

// configFormat returns the format of a config file by extension.
func configFormat(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return "json"
	case ".yaml", ".yml":
		return "yaml"
	case ".hcl":
		return "hcl"
	}
	return ""
}

// readConfigFile decodes a YAML, JSON or HCL file into a generic map.
func readConfigFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config_file: %w", err)
	}
	format := configFormat(path)
	if format == "" {
		return nil, fmt.Errorf("config_file %s: unknown format (want .yaml, .yml, .json or .hcl)", path)
	}
	m, err := decodeConfig(format, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// decodeConfig decodes config bytes of the given format into a map with
// string keys. An empty file (nothing but white space) is an empty
// config in every format, as Consul takes it.
func decodeConfig(format string, b []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(bytes.TrimSpace(b)) == 0 && (format == "json" || format == "yaml" || format == "hcl") {
		return m, nil
	}
	switch format {
	case "json":
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("invalid JSON: %v", err)
		}
	case "yaml":
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("invalid YAML: %v", err)
		}
	case "hcl":
		if err := hcl.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("invalid HCL: %v", err)
		}
		m, _ = flattenHCL(m).(map[string]any)
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
	if m == nil {
		m = map[string]any{}
	}
	sm, ok := stringKeys(m).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a map at the top level")
	}
	return sm, nil
}

// flattenHCL turns HCL v1's one-element lists of blocks into plain maps,
// except under keys that hold lists of blocks by nature.
func flattenHCL(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if l, ok := val.([]map[string]any); ok {
				if len(l) == 1 && k != "services" && k != "checks" {
					t[k] = flattenHCL(l[0])
					continue
				}
				out := make([]any, len(l))
				for i := range l {
					out[i] = flattenHCL(l[i])
				}
				t[k] = out
				continue
			}
			t[k] = flattenHCL(val)
		}
		return t
	case []map[string]any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = flattenHCL(t[i])
		}
		return out
	case []any:
		for i := range t {
			t[i] = flattenHCL(t[i])
		}
		return t
	}
	return v
}

// extractServices removes the "service" and "services" keys from a config
// map and decodes them strictly as service definitions.
func extractServices(m map[string]any) ([]local.ServiceDefinition, error) {
	var raw []any
	for k, val := range m {
		switch strings.ToLower(k) {
		case "service":
			if l, ok := val.([]any); ok {
				raw = append(raw, l...)
			} else {
				raw = append(raw, val)
			}
			delete(m, k)
		case "services":
			l, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("services: want a list of service definitions")
			}
			raw = append(raw, l...)
			delete(m, k)
		}
	}
	out := make([]local.ServiceDefinition, 0, len(raw))
	for i, r := range raw {
		b, err := json.Marshal(stringKeys(r))
		if err != nil {
			return nil, fmt.Errorf("services[%d]: %v", i, err)
		}
		def, err := local.DecodeServiceDefinition(b, true)
		if err != nil {
			return nil, fmt.Errorf("services[%d]: %v", i, err)
		}
		out = append(out, def)
	}
	return out, nil
}

// stringKeys converts YAML's map[any]any (if any) into JSON-encodable maps.
func stringKeys(v any) any {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = stringKeys(val)
		}
		return m
	case map[string]any:
		for k, val := range t {
			t[k] = stringKeys(val)
		}
		return t
	case []any:
		for i := range t {
			t[i] = stringKeys(t[i])
		}
		return t
	}
	return v
}
