package fakeec2

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// signer is who signed a request: the credential scope and, for temporary
// credentials issued by AssumeRole, the role.
type signer struct {
	region, service string
	role            string // assumed role ARN; "" for the configured credentials
}

// verifySigV4 checks the request's AWS Signature Version 4 (Authorization
// header form) against the configured credentials or those AssumeRole
// issued, independently of the SDK's signer.
func (f *Fake) verifySigV4(r *http.Request, body []byte) (signer, error) {
	var who signer
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256"
	if !strings.HasPrefix(auth, algo+" ") {
		return who, fmt.Errorf("missing or unsupported Authorization header")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo+" "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return who, fmt.Errorf("malformed Authorization header")
		}
		fields[k] = v
	}
	cred, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	scopeParts := strings.Split(cred, "/")
	if len(scopeParts) != 5 || scopeParts[4] != "aws4_request" {
		return who, fmt.Errorf("malformed credential scope %q", cred)
	}
	akid, date, region, service := scopeParts[0], scopeParts[1], scopeParts[2], scopeParts[3]
	secret, wantToken := f.cfg.SecretAccessKey, f.cfg.SessionToken
	if akid != f.cfg.AccessKeyID {
		f.mu.Lock()
		issued, ok := f.issued[akid]
		f.mu.Unlock()
		if !ok {
			return who, fmt.Errorf("the access key id %q is not known", akid)
		}
		secret, wantToken, who.role = issued.secret, issued.token, issued.role
	}
	if service != "ec2" && service != "sts" {
		return who, fmt.Errorf("credential scope names service %q, not ec2 or sts", service)
	}
	if _, ok := f.cfg.Zones[region]; !ok {
		return who, fmt.Errorf("region %q is not served by this endpoint", region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if len(amzDate) != len("20060102T150405Z") || amzDate[:8] != date {
		return who, fmt.Errorf("X-Amz-Date %q does not match the credential scope date %q", amzDate, date)
	}
	headers := strings.Split(signedHeaders, ";")
	if !sort.StringsAreSorted(headers) || !contains(headers, "host") || !contains(headers, "x-amz-date") {
		return who, fmt.Errorf("signed headers %q must be sorted and include host and x-amz-date", signedHeaders)
	}
	if wantToken != "" {
		if r.Header.Get("X-Amz-Security-Token") != wantToken || !contains(headers, "x-amz-security-token") {
			return who, fmt.Errorf("the security token included in the request is invalid")
		}
	}

	bodyHash := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(bodyHash[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return who, fmt.Errorf("x-amz-content-sha256 does not match the body")
	}

	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range headers {
		canon.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	canon.WriteString("\n" + signedHeaders + "\n" + payloadHash)

	scope := strings.Join(scopeParts[1:], "/")
	crHash := sha256.Sum256([]byte(canon.String()))
	stringToSign := algo + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])

	key := hmacSHA256([]byte("AWS4"+secret), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return who, fmt.Errorf("the request signature we calculated does not match the signature you provided")
	}
	who.region, who.service = region, service
	return who, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// awsEscape percent-encodes everything but the RFC 3986 unreserved characters.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
