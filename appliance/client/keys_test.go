package client_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// TestNonUTF8RoundTrip: a key that is not UTF-8, listed through the
// client, is the key itself (from key_pct), so it can be read back; errors
// name such keys exactly; writing one is invalid_key, as embedded.
func TestNonUTF8RoundTrip(t *testing.T) {
	dev, err := mem.New(512, 2048)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	st, err := kvtar.New(clock.NewFake(t0), dev)
	require.NoError(t, err)
	h := httpapi.New(st, httpapi.Options{})
	srv := httptest.NewServer(h)
	c, err := client.New(srv.URL, client.Options{})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		h.Close()
		st.Close()
	})
	bad := kv.MustKey("/nu/\xff\xfe")
	require.NoError(t, st.Set(bad, []byte("ff-fe")))
	require.NoError(t, st.Set(kv.MustKey("/nu/d\xe9/x"), []byte("x")))

	es, err := c.List(kv.MustKey("/nu"))
	require.NoError(t, err)
	assert.Equal(t, []kv.Entry{{Key: kv.MustKey("/nu/d\xe9"), Kind: kv.Dictionary}, {Key: bad, Kind: kv.Value}}, es)
	v, err := c.Get(es[1].Key)
	require.NoError(t, err)
	assert.Equal(t, "ff-fe", string(v))
	_, err = c.Get(es[0].Key)
	assert.Equal(t, kv.ValueExpected("get", es[0].Key).Error(), err.Error(), "the same error as embedded")
	es, err = c.List(es[0].Key)
	require.NoError(t, err)
	require.Len(t, es, 1)
	v, err = c.Get(es[0].Key)
	require.NoError(t, err)
	assert.Equal(t, "x", string(v))

	missing := kv.MustKey("/nu/\xff\xff/z")
	_, err = c.Get(missing)
	var ke *kv.Error
	require.True(t, errors.As(err, &ke), "%v", err)
	assert.ErrorIs(t, err, kv.ErrNotFound)
	assert.Equal(t, missing, ke.Key)

	err = c.Set(kv.MustKey("/new/\xe9"), []byte("x"))
	assert.ErrorIs(t, err, kv.ErrInvalidKey)
	require.True(t, errors.As(err, &ke))
	assert.Equal(t, kv.MustKey("/new/\xe9"), ke.Key)
	assert.Equal(t, httpapi.CheckNewKey("set", kv.MustKey("/new/\xe9")).Error(), err.Error(), "the same error as embedded")

	require.NoError(t, c.Rename(bad, kv.MustKey("/nu/fixed")))
	v, err = st.Get(kv.MustKey("/nu/fixed"))
	require.NoError(t, err)
	assert.Equal(t, "ff-fe", string(v))
	err = c.Rename(kv.MustKey("/nu/fixed"), bad)
	assert.ErrorIs(t, err, kv.ErrInvalidKey)
	require.NoError(t, c.Remove(kv.MustKey("/nu/d\xe9")))
	kind, err := st.Exists(kv.MustKey("/nu/d\xe9"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, kind)
}
