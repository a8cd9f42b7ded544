package vhostuser

import (
	"encoding/hex"
	"errors"
	"github.com/tarstore/tarstore/internal/testenv"
	"strings"
	"testing"
)

// The golden bytes are those of a little-endian machine (vhost-user
// messages use the native byte order).
func needLittleEndian(t *testing.T) {
	t.Helper()
	if ne.Uint16([]byte{1, 0}) != 1 {
		testenv.Need(t, "a little-endian machine (the golden bytes are little-endian)")
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenMessages(t *testing.T) {
	needLittleEndian(t)
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"GET_FEATURES", encodeMessage(reqGetFeatures, flagVersion, nil),
			"01000000 01000000 00000000"},
		{"SET_OWNER need reply", encodeMessage(reqSetOwner, flagVersion|flagNeedReply, nil),
			"03000000 09000000 00000000"},
		{"SET_FEATURES u64", encodeMessage(reqSetFeatures, flagVersion, u64Payload(FeatureVersion1|FeatureProtocolFeatures|FeatureBlkBlkSize)),
			"02000000 01000000 08000000 40000040 01000000"},
		{"SET_VRING_NUM state", encodeMessage(reqSetVringNum, flagVersion, vringStatePayload(1, 128)),
			"08000000 01000000 08000000 01000000 80000000"},
		{"SET_VRING_ENABLE state", encodeMessage(reqSetVringEnable, flagVersion, vringStatePayload(0, 1)),
			"12000000 01000000 08000000 00000000 01000000"},
		{"SET_VRING_ADDR", encodeMessage(reqSetVringAddr, flagVersion,
			vringAddrPayload(2, VringFLog, 0x7f0000001000, 0x7f0000002000, 0x7f0000001800, 0x1234)),
			"09000000 01000000 28000000 02000000 01000000" +
				"00100000007f0000 00200000007f0000 00180000007f0000 3412000000000000"},
		{"SET_MEM_TABLE", encodeMessage(reqSetMemTable, flagVersion, memTablePayload([]Region{
			{GuestAddr: 0x7f0000000000, Size: 0x100000, UserAddr: 0x7f0000000000, MmapOffset: 0, FD: 3},
			{GuestAddr: 0x100000000, Size: 0x2000, UserAddr: 0x7f1000000000, MmapOffset: 0x1000, FD: 4},
		})),
			"05000000 01000000 48000000 02000000 00000000" +
				"0000000000 7f0000 0000100000000000 0000000000 7f0000 0000000000000000" +
				"0000000001000000 0020000000000000 00000000107f0000 0010000000000000"},
		{"SET_VRING_KICK with fd", encodeMessage(reqSetVringKick, flagVersion, vringFilePayload(3, 7)),
			"0c000000 01000000 08000000 03000000 00000000"},
		{"SET_VRING_CALL no fd", encodeMessage(reqSetVringCall, flagVersion, vringFilePayload(1, -1)),
			"0d000000 01000000 08000000 01010000 00000000"},
		{"GET_CONFIG", encodeMessage(reqGetConfig, flagVersion, configPayload(0, 0, make([]byte, 4))),
			"18000000 01000000 10000000 00000000 04000000 00000000 00000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if want := unhex(t, tc.want); string(tc.got) != string(want) {
				t.Errorf("got  %x\nwant %x", tc.got, want)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	needLittleEndian(t)
	h := parseHeader(unhex(t, "0b000000 05000000 08000000"))
	if h != (header{req: reqGetVringBase, flags: 5, size: 8}) {
		t.Fatalf("parseHeader = %+v", h)
	}
	var b [hdrSize]byte
	h.put(b[:])
	if parseHeader(b[:]) != h {
		t.Fatal("header does not round-trip")
	}
}

func TestParsePayloads(t *testing.T) {
	needLittleEndian(t)
	if v, err := parseU64(reqGetFeatures, unhex(t, "00000040 01000000")); err != nil || v != 1<<32|1<<30 {
		t.Errorf("parseU64 = %#x, %v", v, err)
	}
	if _, err := parseU64(reqGetFeatures, []byte{1, 2, 3, 4}); !errors.Is(err, ErrProtocol) {
		t.Errorf("parseU64 of 4 bytes: %v, want ErrProtocol", err)
	}
	if idx, num, err := parseVringState(reqGetVringBase, unhex(t, "01000000 2a000000")); err != nil || idx != 1 || num != 42 {
		t.Errorf("parseVringState = %d, %d, %v", idx, num, err)
	}
	if _, _, err := parseVringState(reqGetVringBase, nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("parseVringState(nil): %v, want ErrProtocol", err)
	}
	cfg, err := parseConfig(reqGetConfig, unhex(t, "00000000 04000000 00000000 deadbeef"), 0, 4)
	if err != nil || string(cfg) != "\xde\xad\xbe\xef" {
		t.Errorf("parseConfig = %x, %v", cfg, err)
	}
	for name, p := range map[string]string{
		"empty":        "",
		"short":        "00000000 04000000 00000000 dead",
		"wrong offset": "08000000 04000000 00000000 deadbeef",
		"wrong size":   "00000000 03000000 00000000 deadbeef",
	} {
		if _, err := parseConfig(reqGetConfig, unhex(t, p), 0, 4); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseConfig(%s): %v, want ErrProtocol", name, err)
		}
	}
}

func TestCheckReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    header
		ok   bool
	}{
		{"reply", header{reqGetFeatures, 0x5, 8}, true},
		{"reply with need-reply echoed", header{reqGetFeatures, 0xd, 8}, true},
		{"no reply flag", header{reqGetFeatures, 0x1, 8}, false},
		{"version 0", header{reqGetFeatures, 0x4, 8}, false},
		{"version 2", header{reqGetFeatures, 0x6, 8}, false},
		{"other request", header{reqSetFeatures, 0x5, 8}, false},
		{"huge payload", header{reqGetFeatures, 0x5, maxPayload + 1}, false},
	} {
		err := tc.h.checkReply(reqGetFeatures)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", tc.name, err)
		}
	}
}

func TestRequestString(t *testing.T) {
	if s := reqSetMemTable.String(); s != "SET_MEM_TABLE" {
		t.Errorf("String = %q", s)
	}
	if s := request(99).String(); s != "request(99)" {
		t.Errorf("String = %q", s)
	}
}
