// Package openai holds OpenAI / Azure OpenAI wire types shared by the
// gateway and the simulator. No logic lives here.
package openai

// ErrorBody is the error shape every OpenAI and Azure OpenAI SDK parses:
// {"error":{"message":...,"type":...,"param":...,"code":...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is the inside of ErrorBody. Param is null when not about one field.
type Error struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}
