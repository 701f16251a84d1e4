// Command chorus is the Chorus agent and its command-line client.
//
// "chorus agent" loads the configuration (viper: defaults < files <
// CHORUS_* environment < flags, unknown keys refused), runs one agent
// and turns signals into its lifecycle: SIGINT and SIGTERM leave, SIGHUP
// reloads, a second signal forces the exit. The client commands (members,
// services, register, watch, keyring…) reach an agent only over its HTTP
// API, through hashicorp/consul/api.
//
// It imports agent, agent/local (service definitions in config files)
// and watch; nothing imports it.
package main
