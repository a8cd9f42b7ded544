package cli

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tarstore/tarstore/boot/initramfs"
)

// runImage builds the appliance's initramfs (SPEC §7): this binary (or
// --init) as /init, with the kernel modules it needs for --kernel.
func runImage(c *cmdCtx) error {
	initPath := c.a.get("init")
	if initPath == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this program's file (pass --init): %w", err)
		}
		initPath = self
	}
	bin, err := os.ReadFile(initPath)
	if err != nil {
		return err
	}
	if err := checkStatic(initPath, bin); err != nil {
		return err
	}
	root := c.a.get("modules-root")
	if root == "" {
		root = "/lib/modules"
	}
	kver := c.a.get("kernel")
	if kver == "" {
		vs, err := initramfs.KernelVersions(root)
		if err != nil || len(vs) == 0 {
			return fmt.Errorf("no kernel modules under %s (install Debian's linux-image-amd64, or pass --kernel and --modules-root): %v", root, err)
		}
		kver = vs[len(vs)-1]
	}
	out := c.a.get("out")
	if out == "" {
		out = "tarstore-initramfs.gz"
	}
	var buf bytes.Buffer
	spec := initramfs.Spec{Init: bin, KernelVersion: kver, ModulesDir: filepath.Join(root, kver), Modules: initramfs.DefaultModules}
	if err := initramfs.Build(&buf, spec); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "%s: %d bytes, /init from %s, modules of kernel %s\n", out, buf.Len(), initPath, kver)
	return nil
}

// checkStatic refuses an /init that needs a dynamic loader: the initramfs
// holds no libraries.
func checkStatic(path string, bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("%s is not an ELF program: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New(path + " is linked dynamically: build it with CGO_ENABLED=0 (go build -o tarstore .), the initramfs has no libraries")
		}
	}
	return nil
}
