package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

func runServe(c *cmdCtx) error {
	ctx := c.env.Context
	if ctx == nil {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := appliance.Serve(ctx, c.cfg, appliance.ServeOptions{Log: c.env.Stderr})
	var (
		ke *kv.Error
		de *appliance.DeviceError
		he *hw.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, appliance.ErrNeedToken), errors.Is(err, appliance.ErrBadToken), errors.Is(err, appliance.ErrBadTLS):
		return usagef("%v", err)
	case errors.Is(err, kvtar.ErrTooSmall):
		return openError(c.cfg, err)
	case errors.As(err, &ke):
		return err
	case errors.As(err, &de), errors.As(err, &he):
		return openError(c.cfg, err)
	}
	return err
}
