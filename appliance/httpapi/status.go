package httpapi

// DeviceStatus describes the block device under the store.
type DeviceStatus struct {
	Driver     string `json:"driver"`
	Model      string `json:"model"`
	Serial     string `json:"serial,omitempty"`
	SectorSize int    `json:"sector_size"`
	Sectors    uint64 `json:"sectors"`

	// What the driver says of itself (hw.Info), when it knows.
	MaxTransfer  int  `json:"max_transfer,omitempty"`
	QueueDepth   int  `json:"queue_depth,omitempty"`
	WriteThrough bool `json:"write_through,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Version  string `json:"version"`
	Capacity int64  `json:"capacity"`  // bytes the store can hold (archive area)
	Free     int64  `json:"free"`      // unused bytes
	Largest  int64  `json:"largest"`   // largest value that fits now
	Entries  int    `json:"entries"`   // number of values
	ReadOnly bool   `json:"read_only"` // writes are refused
	// WhyReadOnly says why a writable disk refuses writes (damage, PAX
	// global headers).
	WhyReadOnly string `json:"why_read_only,omitempty"`
	// Damage describes damage found before the end of the archive
	// (kvtar.Store.Damage): `tarstore check --repair` repairs it.
	Damage string       `json:"damage,omitempty"`
	Device DeviceStatus `json:"device"`
}
