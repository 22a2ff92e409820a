package config

// ResolveInit runs the whole pipeline of `init`: load the file (nil when there is no --config), overlay the flags,
// default and validate. Warnings (deprecated API versions) are returned for the caller to print.
func ResolveInit(file []byte, flags InitFlags, env Environment) (*Init, []string, error) {
	cfg := &Init{}
	var warnings []string
	if file != nil {
		docs, err := Load(file)
		if err != nil {
			return nil, nil, err
		}
		if cfg, err = docs.ForInit(); err != nil {
			return nil, nil, err
		}
		warnings = docs.Warnings
	}
	if err := ApplyInitFlags(cfg, flags, file != nil); err != nil {
		return nil, nil, err
	}
	if err := SetInitDefaults(cfg, env); err != nil {
		return nil, nil, err
	}
	if err := ValidateInit(cfg); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

// ResolveJoin runs the whole pipeline of `join` the same way.
func ResolveJoin(file []byte, flags JoinFlags, env Environment) (*Join, []string, error) {
	cfg := &Join{}
	var warnings []string
	if file != nil {
		docs, err := Load(file)
		if err != nil {
			return nil, nil, err
		}
		if cfg, err = docs.ForJoin(); err != nil {
			return nil, nil, err
		}
		warnings = docs.Warnings
	}
	w, err := ApplyJoinFlags(cfg, flags, file != nil)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	if err := SetJoinDefaults(cfg, env); err != nil {
		return nil, nil, err
	}
	if err := ValidateJoin(cfg); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}
