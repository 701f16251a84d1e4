package catalog

// RecordFormat is the version of the node-record protocol this build
// speaks (the first byte of every encoded record). Agents advertise it
// as their protocol version in the Serf tags Consul's CLI reads (vsn).
const RecordFormat = recordFormat
