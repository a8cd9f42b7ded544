package kv

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorWording(t *testing.T) {
	a, b := MustKey("/a"), MustKey("/a/b")
	for _, tc := range []struct {
		err       error
		sentinel  error
		code, msg string
	}{
		{NotFound("get", b), ErrNotFound, "not_found", "get /a/b: Cannot find the key /a/b"},
		{ValueExpected("get", a), ErrValueExpected, "value_expected", "get /a: Expected a value; /a is a dictionary"},
		{DictionaryExpected("set", a), ErrDictionaryExpected, "dictionary_expected", "set /a: Expected a dictionary; /a is a value"},
		{NoSpace("set", b), ErrNoSpace, "no_space", "set /a/b: No space left on device"},
		{AlreadyPresent("allocate", b), ErrAlreadyPresent, "already_present", "allocate /a/b: The key /a/b is already present"},
		{RenameSourcePrefix(a, b), ErrRenameSourcePrefix, "rename_source_prefix", "rename /a: Rename: source /a is prefix of destination /a/b"},
		{InvalidArgument("get", a, "negative offset -1"), ErrInvalidArgument, "invalid_argument", "get /a: Invalid argument: negative offset -1"},
		{Storage("set", a, syscall.EIO), ErrStorage, "storage_error", "set /a: Storage error on /a: input/output error"},
		{ReadOnly("set", a), ErrReadOnly, "read_only", "set /a: The store is read-only"},
		{Closed("get", a), ErrClosed, "closed", "get /a: The store is closed"},
	} {
		require.Error(t, tc.err)
		assert.Equal(t, tc.msg, tc.err.Error())
		assert.ErrorIs(t, tc.err, tc.sentinel)
		assert.Equal(t, tc.code, Code(tc.err))
		assert.Equal(t, tc.code, Code(fmt.Errorf("wrapped: %w", tc.err)))
		var e *Error
		require.True(t, errors.As(tc.err, &e))
		assert.Equal(t, tc.code, e.Code())
	}
}

func TestErrorCause(t *testing.T) {
	err := Storage("get", MustKey("/x"), fmt.Errorf("device: %w", syscall.EIO))
	assert.ErrorIs(t, err, ErrStorage)
	assert.ErrorIs(t, err, syscall.EIO, "the cause is reachable")
	assert.NotErrorIs(t, err, ErrNotFound)

	_, err = ParseKey("/a/../b")
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, "parse", e.Op)
	assert.Contains(t, e.Message(), `".."`)
}

func TestCode(t *testing.T) {
	assert.Equal(t, "", Code(nil))
	assert.Equal(t, "internal", Code(errors.New("boom")))
	assert.Equal(t, "corrupt", Code(&Error{Op: "open", Err: ErrCorrupt, Detail: "bad checksum at offset 512"}))
}

func TestWithOp(t *testing.T) {
	orig := NotFound("get", MustKey("/a"))
	renamed := WithOp(orig, "size")
	assert.Equal(t, "size /a: Cannot find the key /a", renamed.Error())
	assert.Equal(t, "get /a: Cannot find the key /a", orig.Error(), "the original is not modified")
	plain := errors.New("x")
	assert.Same(t, plain, WithOp(plain, "size"))
}

func TestDictDigest(t *testing.T) {
	v1, v2 := ValueDigest([]byte("one")), ValueDigest([]byte("two"))
	d := func(es ...DigestEntry) []byte { return DictDigest(es) }
	base := d(DigestEntry{"a", Value, v1}, DigestEntry{"b", Value, v2})
	assert.Len(t, base, DigestSize)
	assert.Equal(t, base, d(DigestEntry{"a", Value, v1}, DigestEntry{"b", Value, v2}), "deterministic")
	for name, other := range map[string][]byte{
		"child content": d(DigestEntry{"a", Value, v2}, DigestEntry{"b", Value, v2}),
		"child name":    d(DigestEntry{"a", Value, v1}, DigestEntry{"c", Value, v2}),
		"child kind":    d(DigestEntry{"a", Value, v1}, DigestEntry{"b", Dictionary, v2}),
		"entry missing": d(DigestEntry{"a", Value, v1}),
		"name boundary": d(DigestEntry{"ab", Value, v1}, DigestEntry{"", Value, v2}),
	} {
		assert.NotEqual(t, base, other, name)
	}
	assert.NotEqual(t, ValueDigest(nil), d(), "an empty dictionary differs from an empty value")
}
