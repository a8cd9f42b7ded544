package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// mount mounts a file system of type fstype from source at target,
// creating target first.
func mount(source, target, fstype string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(source, target, fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return os.NewSyscallError("mount "+fstype+" on "+target, err)
	}
	return nil
}

// readCmdline reads the kernel command line.
func readCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// uptime is the time since the kernel started (CLOCK_BOOTTIME).
func uptime() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// signals makes Ctrl-Alt-Del a SIGINT to PID 1, and SIGINT and SIGTERM
// the end of b.ctx.
func (b *Booter) signals() error {
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		fmt.Fprintln(b.Console, "tarstore: shutdown requested by a signal")
		b.cancel()
	}()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		return os.NewSyscallError("reboot(CAD_OFF)", err)
	}
	return nil
}

// reapChildren waits for every child that exits (orphans PID 1 adopts).
func reapChildren() error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}()
	return nil
}

// loadModules loads the modules listed in the file list, in order; it
// reports each on w and returns the failures.
func loadModules(list string, w io.Writer) error {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil // an image without modules (a kernel with the drivers built in)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		path := strings.TrimSpace(sc.Text())
		if path == "" || strings.HasPrefix(path, "#") {
			continue
		}
		if err := loadModule(path); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(w, "tarstore: %d kernel modules loaded\n", n)
	return errors.Join(errs...)
}

// loadModule loads one module file; one already loaded is fine.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: %w", path, os.NewSyscallError("finit_module", err))
	}
	return nil
}

// powerOff flushes the file systems and powers the machine off. Should
// that fail (not PID 1), the process exits, which as PID 1 panics the
// kernel: with panic=-1 QEMU then stops too.
func powerOff() {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(os.Stdout, "tarstore: power off failed: %v\n", err)
	os.Exit(1)
}
