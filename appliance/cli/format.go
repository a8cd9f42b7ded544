package cli

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// formatProbe is how much of the start of a device format looks at before
// it overwrites it.
const formatProbe = 1 << 20

func runFormat(c *cmdCtx) (err error) {
	if c.cfg.Virtio != "" || c.cfg.NVMe != "" {
		_, err := appliance.OpenDevice(c.cfg, true)
		return openError(c.cfg, err)
	}
	path := c.cfg.Disk
	var size int64
	if c.a.has("size") {
		if size, err = parseSize("--size", c.a.get("size")); err != nil {
			return err
		}
		if size <= 0 || size%512 != 0 {
			return usagef("--size: %d is not a positive multiple of 512", size)
		}
	}
	created := false
	if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
		if size == 0 {
			return usagef("%s does not exist: give --size to create an image of that size", path)
		}
		if size < kvtar.MinDeviceSize {
			return usagef("--size: %d bytes is less than the smallest store, %d", size, kvtar.MinDeviceSize)
		}
		if err := file.Create(path, size); err != nil {
			return &opError{"format", path, createMessage(err), kv.ErrStorage.Error()}
		}
		created = true
		defer func() {
			if err != nil {
				os.Remove(path)
			}
		}()
	} else if err := c.refuseData(path, size); err != nil {
		return err
	}

	dev, err := appliance.OpenDevice(c.cfg, false)
	if err != nil {
		return openError(c.cfg, err)
	}
	if err := kvtar.Format(dev); err != nil {
		dev.Close()
		return err
	}
	s, err := kvtar.New(appliance.Clock(), dev)
	if err != nil {
		dev.Close()
		return err
	}
	info, err := s.Stat()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	verb := "formatted"
	if created {
		verb = "created"
	}
	d := info.Device
	fmt.Fprintf(c.env.Stdout, "%s %s: capacity %d bytes (%s), %d sectors of %d bytes\n",
		verb, path, info.Size, human(info.Size), d.Sectors, d.SectorSize)
	return nil
}

func createMessage(err error) string {
	var he *hw.Error
	if errors.As(err, &he) && he.Err != nil {
		return he.Err.Error()
	}
	return err.Error()
}

// refuseData opens the existing device read-only and refuses (a usage
// error: --force is missing) when its first MiB is not all zeroes, saying
// what it looks like. It also checks that --size, if given, matches.
func (c *cmdCtx) refuseData(path string, size int64) error {
	dev, err := appliance.OpenDevice(c.cfg, true)
	if err != nil {
		return openError(c.cfg, err)
	}
	defer dev.Close()
	info := dev.Info()
	if size != 0 && size != info.Size() {
		return usagef("%s holds %d bytes, not %d: leave --size out to format it as it is", path, info.Size(), size)
	}
	if c.a.on("force") {
		return nil
	}
	n := min(int64(formatProbe), info.Size())
	n -= n % int64(info.SectorSize)
	if n == 0 {
		return nil
	}
	buf := hw.AllocBuffer(dev, int(n))
	if err := dev.Read(0, buf); err != nil {
		return &opError{"format", path, err.Error(), kv.ErrStorage.Error()}
	}
	i := bytes.IndexFunc(buf, func(r rune) bool { return r != 0 })
	if i < 0 {
		return nil
	}
	what := describeData(buf, i)
	if len(buf) >= 512 && bytes.Equal(buf[257:262], []byte("ustar")) || bytes.HasPrefix(buf, []byte("pax_global_header")) {
		// Say how much the archive holds, as the store sees it.
		if s, err := kvtar.New(appliance.Clock(), dev); err == nil {
			if st, err := s.Stat(); err == nil {
				what = fmt.Sprintf("a tar archive with %s", plural(int64(st.Values), "value"))
			}
		}
	}
	return usagef("%s holds data (%s): add --force to format it anyway, losing what it holds", path, what)
}

// describeData names what the first bytes of a device look like.
func describeData(b []byte, first int) string {
	switch {
	case len(b) >= 512 && bytes.Equal(b[257:262], []byte("ustar")):
		return "a tar archive"
	case len(b) >= 1024 && bytes.Equal(b[512:520], []byte("EFI PART")):
		return "a GPT partition table"
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xEF53:
		return "an ext2/3/4 file system"
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA:
		return "a boot sector or MBR partition table"
	}
	return fmt.Sprintf("non-zero bytes from offset %d", first)
}
