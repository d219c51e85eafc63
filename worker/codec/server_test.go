package codec_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dovaclean/go-update-orchestrator/worker/codec"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

const (
	token    = "codec-token-0123456789"
	uiOrigin = "https://temporal-ui.example.com"
)

func startEndpoint(t *testing.T, c *codec.Codec) string {
	t.Helper()
	srv := httptest.NewServer(codec.Handler(c, []string{"other-token-0123456789", token}, []string{uiOrigin}, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func encryptedSpec(t *testing.T, c *codec.Codec) []byte {
	t.Helper()
	p, err := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c).ToPayload(spec)
	require.NoError(t, err)
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	require.NoError(t, err)
	return b
}

func TestEndpointDecodesForATokenHolder(t *testing.T) {
	c := newCodec(t, newKey(t))
	url := startEndpoint(t, c)
	for _, path := range []string{"/default/decode", "/decode"} {
		resp, body := post(t, url+path, http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, encryptedSpec(t, c))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var payloads commonpb.Payloads
		require.NoError(t, protojson.Unmarshal(body, &payloads))
		require.Len(t, payloads.Payloads, 1)
		var back workflows.Spec
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(payloads.Payloads[0], &back))
		assert.Equal(t, spec, back, path)
	}
}

func TestEndpointEncodes(t *testing.T) {
	c := newCodec(t, newKey(t))
	url := startEndpoint(t, c)
	plain, err := converter.GetDefaultDataConverter().ToPayload(spec)
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}})
	require.NoError(t, err)

	resp, out := post(t, url+"/default/encode", http.Header{"Authorization": {"Bearer " + token}}, body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
	var payloads commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(out, &payloads))
	assert.Equal(t, codec.EncodingEncrypted, string(payloads.Payloads[0].Metadata[codec.MetadataEncoding]))
	decoded, err := c.Decode(payloads.Payloads)
	require.NoError(t, err)
	assert.Equal(t, plain.Data, decoded[0].Data)
}

func TestEndpointRefusesWithoutTheToken(t *testing.T) {
	c := newCodec(t, newKey(t))
	url := startEndpoint(t, c)
	for name, header := range map[string]http.Header{
		"no header":     {},
		"wrong token":   {"Authorization": {"Bearer codec-token-0123456788"}},
		"not bearer":    {"Authorization": {token}},
		"token prefix":  {"Authorization": {"Bearer " + token[:10]}},
		"another token": {"Authorization": {"Bearer " + token + "x"}},
	} {
		resp, body := post(t, url+"/default/decode", header, encryptedSpec(t, c))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Equal(t, "unauthorized\n", string(body), name)
		assert.NotContains(t, string(body), "fw.example.com", name)
	}
}

func TestEndpointCORS(t *testing.T) {
	c := newCodec(t, newKey(t))
	url := startEndpoint(t, c)

	preflight, err := http.NewRequest(http.MethodOptions, url+"/default/decode", nil)
	require.NoError(t, err)
	preflight.Header.Set("Origin", uiOrigin)
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	preflight.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
	resp, err := http.DefaultClient.Do(preflight)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode, "a preflight carries no credentials")
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	for _, h := range []string{"Authorization", "Content-Type", "X-Namespace"} {
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), h)
	}

	r, body := post(t, url+"/default/decode", http.Header{"Origin": {uiOrigin}, "Authorization": {"Bearer " + token}}, encryptedSpec(t, c))
	assert.Equal(t, http.StatusOK, r.StatusCode, string(body))
	assert.Equal(t, uiOrigin, r.Header.Get("Access-Control-Allow-Origin"))

	r, body = post(t, url+"/default/decode", http.Header{"Origin": {"https://evil.example.com"}, "Authorization": {"Bearer " + token}}, encryptedSpec(t, c))
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	assert.Empty(t, r.Header.Get("Access-Control-Allow-Origin"))
	assert.NotContains(t, string(body), "fw.example.com")
}

func TestEndpointRefusesOversizedRequests(t *testing.T) {
	c := newCodec(t, newKey(t))
	url := startEndpoint(t, c)
	big := `{"payloads":[{"data":"` + strings.Repeat("A", codec.MaxRequestBytes) + `"}]}`
	resp, _ := post(t, url+"/default/decode", http.Header{"Authorization": {"Bearer " + token}}, []byte(big))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
