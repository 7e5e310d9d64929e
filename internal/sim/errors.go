package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// apiError is an error answer in Azure's shape {"error":{"code","message"}}, with OpenAI's
// "type" and "param" when set.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Type    string `json:"type,omitempty"`
	Param   string `json:"param,omitempty"`
}

const (
	msgUnauthorized = "Access denied due to invalid subscription key or wrong API endpoint. " +
		"Make sure to provide a valid key for an active subscription and use a correct regional " +
		"API endpoint for your resource."
	msgDeploymentNotFound = "The API deployment for this resource does not exist. If you created " +
		"the deployment within the last 5 minutes, please wait a moment and try again."
	msgServerError   = "Backend returned unexpected response. Please contact Microsoft for help."
	msgUnavailable   = "The service is temporarily unable to process your request. Please try again later."
	msgQuotaIncrease = "Please go here: https://aka.ms/oai/quotaincrease if you would like to further " +
		"increase the default rate limit."
)

var (
	errUnauthorized = &apiError{status: http.StatusUnauthorized, Code: "401", Message: msgUnauthorized}
	errNotFound     = &apiError{status: http.StatusNotFound, Code: "404", Message: "Resource not found"}
	errBadVersion   = &apiError{status: http.StatusBadRequest, Code: "BadRequest", Message: "API version not supported"}
	errNoDeployment = &apiError{status: http.StatusNotFound, Code: "DeploymentNotFound", Message: msgDeploymentNotFound}
	errInternal     = &apiError{status: http.StatusInternalServerError, Code: "InternalServerError", Message: msgServerError}
	errUnavailable  = &apiError{status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: msgUnavailable}
	errTooLarge     = &apiError{status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge",
		Message: "The request body is too large."}
)

// badRequest is a 400 for an invalid request; param names the offending field if known.
func badRequest(param, format string, args ...any) *apiError {
	return &apiError{
		status:  http.StatusBadRequest,
		Code:    "BadRequest",
		Message: fmt.Sprintf(format, args...),
		Type:    "invalid_request_error",
		Param:   param,
	}
}

func methodNotAllowed() *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, Code: "405", Message: "Method not allowed"}
}

// contentFilterBody is Azure's answer to a prompt that trips the content filter.
const contentFilterBody = `{"error":{"message":"The response was filtered due to the prompt ` +
	`triggering Azure OpenAI's content management policy. Please modify your prompt and retry. ` +
	`To learn more about our content filtering policies please read our documentation: ` +
	`https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt",` +
	`"code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation",` +
	`"content_filter_result":{"hate":{"filtered":true,"severity":"high"},` +
	`"jailbreak":{"filtered":false,"detected":false},` +
	`"self_harm":{"filtered":false,"severity":"safe"},` +
	`"sexual":{"filtered":false,"severity":"safe"},` +
	`"violence":{"filtered":false,"severity":"safe"}}}}}`

// errorEventData is the error a stream sends as its only event with the error_event fault.
const errorEventData = `{"error":{"message":"The server had an error while processing your ` +
	`request. Sorry about that!","type":"server_error","param":null,"code":null}}`

// operationName is the name Azure uses for op in throttling messages.
func operationName(op operation) string {
	switch op {
	case opChat:
		return "ChatCompletions_Create"
	case opCompletions:
		return "Completions_Create"
	case opEmbeddings:
		return "Embeddings_Create"
	case opTranscriptions:
		return "Transcriptions_Create"
	case opTranslations:
		return "Translations_Create"
	case opImages:
		return "ImageGenerations_Create"
	default:
		return "Models_List"
	}
}

// throttled is Azure's 429 for a request over the token or call rate limit; retryAfter is in
// whole seconds.
func throttled(op operation, apiVersion string, byTokens bool, retryAfter int64) *apiError {
	kind := "call rate limit"
	if byTokens {
		kind = "token rate limit"
	}
	unit := "seconds"
	if retryAfter == 1 {
		unit = "second"
	}
	return &apiError{
		status: http.StatusTooManyRequests,
		Code:   "429",
		Message: fmt.Sprintf("Requests to the %s Operation under Azure OpenAI API version %s have "+
			"exceeded %s of your current OpenAI S0 pricing tier. Please retry after %d %s. %s",
			operationName(op), apiVersion, kind, retryAfter, unit, msgQuotaIncrease),
	}
}

// tooLargeForQuota is the 429 for a request whose estimate alone exceeds the token limit.
func tooLargeForQuota(op operation, apiVersion string, cost, tpm int64) *apiError {
	return &apiError{
		status: http.StatusTooManyRequests,
		Code:   "429",
		Message: fmt.Sprintf("Requests to the %s Operation under Azure OpenAI API version %s have "+
			"exceeded token rate limit of your current OpenAI S0 pricing tier. This request's "+
			"estimated %d tokens exceed the limit of %d tokens per window and can never be "+
			"admitted; reduce the prompt or max_tokens. %s",
			operationName(op), apiVersion, cost, tpm, msgQuotaIncrease),
	}
}

// overloaded is the injected 429; retryAfter <= 0 means no advertised delay.
func overloaded(op operation, apiVersion string, retryAfter time.Duration) *apiError {
	if retryAfter <= 0 {
		return &apiError{status: http.StatusTooManyRequests, Code: "429",
			Message: "Rate limit is exceeded. Try again later."}
	}
	return throttled(op, apiVersion, false, ceilDiv(retryAfter, time.Second))
}

// setRetryAfter sets retry-after (whole seconds, rounded up, at least 1) and retry-after-ms
// (rounded up).
func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("Retry-After", strconv.FormatInt(max(ceilDiv(d, time.Second), 1), 10))
	h.Set("Retry-After-Ms", strconv.FormatInt(max(ceilDiv(d, time.Millisecond), 1), 10))
}

// ceilDiv returns ⌈d / unit⌉ for d >= 0.
func ceilDiv(d, unit time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + unit - 1) / unit)
}

// writeError sends e as JSON.
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	s.writeBody(w, e.status, "application/json", e.body())
}

// body is the JSON of e.
func (e *apiError) body() []byte {
	body, err := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	if err != nil {
		// Cannot happen: apiError has only strings.
		return []byte(`{"error":{"code":"500","message":"internal error"}}`)
	}
	return body
}
