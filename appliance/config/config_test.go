package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		src     Sources
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c Config) {
				assert.Equal(t, DefaultDisk, c.Disk)
				assert.Equal(t, DefaultListen, c.Listen)
				assert.Equal(t, DefaultMaxConns, c.MaxConns)
				assert.False(t, c.ReadOnly)
				assert.Empty(t, c.Remote)
				assert.Empty(t, c.TokenFile)
				assert.True(t, c.DefaultTarget())
				assert.Equal(t, Default, c.From[Disk])
				assert.Equal(t, Default, c.From[Listen])
			},
		},
		{
			name: "kernel over defaults",
			src:  Sources{Cmdline: `console=ttyS0 tarstore.disk=/dev/vda tarstore.listen=0.0.0.0:80 tarstore.read_only quiet`},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "/dev/vda", c.Disk)
				assert.Equal(t, "0.0.0.0:80", c.Listen)
				assert.True(t, c.ReadOnly)
				assert.False(t, c.DefaultTarget())
				assert.Equal(t, Kernel, c.From[Disk])
				assert.Equal(t, Kernel, c.From[ReadOnly])
			},
		},
		{
			name: "environment over kernel",
			src: Sources{
				Cmdline:   "tarstore.disk=/dev/vda tarstore.listen=0.0.0.0:80 tarstore.token-file=/k",
				LookupEnv: env("TARSTORE_DISK", "env.img", "TARSTORE_TOKEN_FILE", "/e", "TARSTORE_READ_ONLY", "yes"),
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "env.img", c.Disk)
				assert.Equal(t, "0.0.0.0:80", c.Listen)
				assert.Equal(t, "/e", c.TokenFile)
				assert.True(t, c.ReadOnly)
				assert.Equal(t, Env, c.From[Disk])
				assert.Equal(t, Kernel, c.From[Listen])
			},
		},
		{
			name: "flags over environment over kernel",
			src: Sources{
				Flags:     map[string]string{Disk: "flag.img", ReadOnly: "false", MaxConns: "3"},
				LookupEnv: env("TARSTORE_DISK", "env.img", "TARSTORE_READ_ONLY", "1", "TARSTORE_LISTEN", "127.0.0.1:1"),
				Cmdline:   "tarstore.disk=/dev/vda tarstore.listen=0.0.0.0:80 tarstore.max-conns=9",
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "flag.img", c.Disk)
				assert.False(t, c.ReadOnly)
				assert.Equal(t, "127.0.0.1:1", c.Listen)
				assert.Equal(t, 3, c.MaxConns)
				assert.Equal(t, Flag, c.From[Disk])
				assert.Equal(t, Env, c.From[Listen])
			},
		},
		{
			name: "the target as a whole: a --disk flag beats TARSTORE_URL",
			src: Sources{
				Flags:     map[string]string{Disk: "x.img"},
				LookupEnv: env("TARSTORE_URL", "http://127.0.0.1:7070"),
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "x.img", c.Disk)
				assert.Empty(t, c.Remote)
				assert.False(t, c.IsRemote())
			},
		},
		{
			name: "TARSTORE_URL beats a kernel disk and the default disk",
			src: Sources{
				LookupEnv: env("TARSTORE_URL", "http://10.0.2.2:7070/"),
				Cmdline:   "tarstore.disk=/dev/vda",
			},
			check: func(t *testing.T, c Config) {
				assert.Empty(t, c.Disk)
				assert.Equal(t, "http://10.0.2.2:7070", c.Remote)
				assert.True(t, c.IsRemote())
				assert.False(t, c.DefaultTarget())
			},
		},
		{
			name: "an empty TARSTORE_URL is unset",
			src:  Sources{LookupEnv: env("TARSTORE_URL", "")},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, DefaultDisk, c.Disk)
				assert.False(t, c.IsRemote())
			},
		},
		{
			name: "an empty TARSTORE_TOKEN_FILE clears the kernel's",
			src:  Sources{LookupEnv: env("TARSTORE_TOKEN_FILE", ""), Cmdline: "tarstore.token_file=/k"},
			check: func(t *testing.T, c Config) {
				assert.Empty(t, c.TokenFile)
				assert.Equal(t, Env, c.From[TokenFile])
			},
		},
		{
			name: "virtio from the kernel",
			src:  Sources{Cmdline: `tarstore.virtio="0000:00:04.0"`},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "0000:00:04.0", c.Virtio)
				assert.Empty(t, c.Disk)
			},
		},
		{
			name:    "two targets in one layer",
			src:     Sources{Flags: map[string]string{Disk: "x.img", Remote: "http://h:1"}},
			wantErr: "--disk, --remote: name one target only",
		},
		{
			name:    "two targets in the environment",
			src:     Sources{LookupEnv: env("TARSTORE_DISK", "x", "TARSTORE_NVME", "y")},
			wantErr: "TARSTORE_DISK, TARSTORE_NVME: name one target only",
		},
		{
			name:    "empty --disk",
			src:     Sources{Flags: map[string]string{Disk: ""}},
			wantErr: "--disk: empty value",
		},
		{
			name:    "bad URL",
			src:     Sources{Flags: map[string]string{Remote: "127.0.0.1:7070"}},
			wantErr: `--remote: "127.0.0.1:7070" is not an http:// or https:// URL`,
		},
		{
			name:    "bad listen address from the environment",
			src:     Sources{LookupEnv: env("TARSTORE_LISTEN", "7070")},
			wantErr: `TARSTORE_LISTEN: "7070" is not HOST:PORT`,
		},
		{
			name:    "bad switch from the kernel",
			src:     Sources{Cmdline: "tarstore.read-only=maybe"},
			wantErr: `tarstore.read-only: "maybe" is not true or false`,
		},
		{
			name:    "bad sector size",
			src:     Sources{Flags: map[string]string{SectorSize: "1000"}},
			wantErr: `--sector-size: "1000" is not 0 or a multiple of 512`,
		},
		{
			name:    "bad max-conns",
			src:     Sources{Flags: map[string]string{MaxConns: "0"}},
			wantErr: `--max-conns: "0" is not a positive number`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.src)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.True(t, IsConfigError(err))
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"root=/dev/sda quiet", map[string]string{}},
		{"tarstore.disk=/dev/vda", map[string]string{"tarstore.disk": "/dev/vda"}},
		{`tarstore.disk="/dev/my disk" x=1`, map[string]string{"tarstore.disk": "/dev/my disk"}},
		{`"tarstore.disk=/a b"`, map[string]string{"tarstore.disk": "/a b"}},
		{"tarstore.read_only tarstore.token_file=/t", map[string]string{"tarstore.read-only": "true", "tarstore.token-file": "/t"}},
		{"tarstore.listen=a:1  tarstore.listen=b:2\n", map[string]string{"tarstore.listen": "b:2"}},
		{"tarstore.disk=", map[string]string{"tarstore.disk": ""}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, ParseCmdline(tc.in), "%q", tc.in)
	}
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"1", "true", "TRUE", "yes", "on"} {
		b, err := ParseBool(s)
		require.NoError(t, err)
		assert.True(t, b, s)
	}
	for _, s := range []string{"", "0", "false", "No", "off"} {
		b, err := ParseBool(s)
		require.NoError(t, err)
		assert.False(t, b, s)
	}
	_, err := ParseBool("2")
	assert.Error(t, err)
}

func TestKernelCmdlineNotPID1(t *testing.T) {
	// The test binary is never PID 1: the host's kernel command line is
	// not the appliance's configuration.
	assert.Empty(t, KernelCmdline())
}

func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings {
		assert.False(t, seen[s.Name], s.Name)
		seen[s.Name] = true
		assert.NotEmpty(t, s.Env, s.Name)
		assert.NotEmpty(t, s.Kernel, s.Name)
		assert.NotEmpty(t, s.Help, s.Name)
		_, ok := Lookup(s.Name)
		assert.True(t, ok)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	c, err := Load(Sources{})
	require.NoError(t, err)
	assert.Equal(t, 0, c.MaxConnsPerIP)
	assert.Equal(t, DefaultMaxConns/4, c.PerIP())
	c, err = Load(Sources{Flags: map[string]string{MaxConns: "2"}})
	require.NoError(t, err)
	assert.Equal(t, 1, c.PerIP(), "at least one")
	c, err = Load(Sources{Flags: map[string]string{MaxConns: "8"}, LookupEnv: env("TARSTORE_MAX_CONNS_PER_IP", "100")})
	require.NoError(t, err)
	assert.Equal(t, 100, c.MaxConnsPerIP)
	assert.Equal(t, 8, c.PerIP(), "never more than max-conns")
	c, err = Load(Sources{Cmdline: "tarstore.max-conns-per-ip=5"})
	require.NoError(t, err)
	assert.Equal(t, 5, c.PerIP())
	for _, bad := range []string{"-1", "x", ""} {
		_, err = Load(Sources{Flags: map[string]string{MaxConnsPerIP: bad}})
		assert.True(t, IsConfigError(err), "%q", bad)
	}
}

// TestTLSAndLogSettings: the TLS and log settings from every layer, a
// certificate without its key, and a log format that is not one.
func TestTLSAndLogSettings(t *testing.T) {
	c, err := Load(Sources{Cmdline: "tarstore.tls-cert=/c.pem tarstore.tls_key=/k.pem tarstore.access-log tarstore.log-format=json"})
	require.NoError(t, err)
	assert.Equal(t, "/c.pem", c.TLSCert)
	assert.Equal(t, "/k.pem", c.TLSKey)
	assert.True(t, c.TLS())
	assert.True(t, c.AccessLog)
	assert.Equal(t, LogJSON, c.LogFormat)

	c, err = Load(Sources{LookupEnv: env("TARSTORE_CA_CERT", "/ca.pem")})
	require.NoError(t, err)
	assert.Equal(t, "/ca.pem", c.CACert)
	assert.False(t, c.TLS())
	assert.False(t, c.AccessLog, "the access log is off by default")
	assert.Equal(t, LogText, c.LogFormat)

	_, err = Load(Sources{LookupEnv: env("TARSTORE_TLS_CERT", "/c.pem")})
	require.EqualError(t, err, "TARSTORE_TLS_CERT: needs tls-key too (a certificate and its key)")
	_, err = Load(Sources{Flags: map[string]string{TLSKey: "/k.pem"}})
	require.EqualError(t, err, "--tls-key: needs tls-cert too (a certificate and its key)")
	_, err = Load(Sources{Flags: map[string]string{LogFormat: "xml"}})
	require.EqualError(t, err, `--log-format: "xml" is not text or json`)
}
