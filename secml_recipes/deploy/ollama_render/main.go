// ollama_render renders an Ollama Modelfile TEMPLATE the way Ollama's server does for /api/chat, so that a
// Modelfile can be checked against the chat template a model was trained with, without an Ollama install.
//
// It reproduces, with the standard library only, the data Ollama hands to Go's text/template: system messages
// collected into .System, consecutive messages of one role merged (tool messages excepted), tool-call arguments
// as a plain map (encoding/json prints them with sorted keys), tools in Ollama's own struct shape (JSON-schema
// keywords it does not model are dropped; top-level properties become a map), the `json` template function, and
// the missingkey=zero option. Input on stdin: {"template": "...", "messages": [...], "tools": [...]} in the shape
// of Ollama's /api/chat request; the rendered prompt goes to stdout.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
)

// orderedProps keeps the key order of a JSON object, as Ollama's ordered map does for nested properties.
type orderedProps struct {
	keys   []string
	values map[string]toolProperty
}

func (o *orderedProps) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	o.values = map[string]toolProperty{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		var p toolProperty
		if err := dec.Decode(&p); err != nil {
			return err
		}
		if _, seen := o.values[key]; !seen {
			o.keys = append(o.keys, key)
		}
		o.values[key] = p
	}
	return nil
}

func (o orderedProps) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(o.values[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// propertyType is a JSON-schema type: one name (printed as a string) or several (printed as a list).
type propertyType []string

func (pt *propertyType) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*pt = propertyType{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*pt = many
	return nil
}

func (pt propertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

type toolProperty struct {
	AnyOf       []toolProperty `json:"anyOf,omitempty"`
	Type        propertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Properties  *orderedProps  `json:"properties,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

type apiTool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Parameters  struct {
			Type       string        `json:"type"`
			Defs       any           `json:"$defs,omitempty"`
			Items      any           `json:"items,omitempty"`
			Required   []string      `json:"required,omitempty"`
			Properties *orderedProps `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

// What the template sees (Ollama's templateTool and friends).
type templateProperties map[string]toolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type templateTool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Parameters  struct {
			Type       string             `json:"type"`
			Defs       any                `json:"$defs,omitempty"`
			Items      any                `json:"items,omitempty"`
			Required   []string           `json:"required,omitempty"`
			Properties templateProperties `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

func (t templateTool) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type templateTools []templateTool

func (t templateTools) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type apiMessage struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string `json:"thinking,omitempty"`
	ToolCalls []struct {
		ID       string `json:"id,omitempty"`
		Function struct {
			Index     int            `json:"index"`
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls,omitempty"`
	ToolName   string `json:"tool_name,omitempty"`
	ToolCallID string `json:"tool_call_id,omitempty"`
}

type templateToolCall struct {
	ID       string
	Function struct {
		Index     int
		Name      string
		Arguments templateArgs
	}
}

type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []any
	ToolCalls  []templateToolCall
	ToolName   string
	ToolCallID string
}

type request struct {
	Template string       `json:"template"`
	Messages []apiMessage `json:"messages"`
	Tools    []apiTool    `json:"tools"`
}

// collate joins the system messages and merges consecutive messages of one role (tool messages excepted).
func collate(msgs []apiMessage) (string, []*apiMessage) {
	var system []string
	var collated []*apiMessage
	for i := range msgs {
		msgs[i].Role = strings.ToLower(msgs[i].Role)
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func convertTools(tools []apiTool) templateTools {
	if tools == nil {
		return nil
	}
	out := make(templateTools, len(tools))
	for i, t := range tools {
		var tt templateTool
		tt.Type, tt.Items = t.Type, t.Items
		tt.Function.Name, tt.Function.Description = t.Function.Name, t.Function.Description
		p := t.Function.Parameters
		tt.Function.Parameters.Type, tt.Function.Parameters.Defs = p.Type, p.Defs
		tt.Function.Parameters.Items, tt.Function.Parameters.Required = p.Items, p.Required
		if p.Properties != nil {
			tt.Function.Parameters.Properties = templateProperties(p.Properties.values)
		}
		out[i] = tt
	}
	return out
}

func convertMessages(msgs []*apiMessage) []*templateMessage {
	out := make([]*templateMessage, len(msgs))
	for i, m := range msgs {
		tm := &templateMessage{Role: m.Role, Content: m.Content, Thinking: m.Thinking, ToolName: m.ToolName,
			ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			var tc templateToolCall
			tc.ID = c.ID
			tc.Function.Index, tc.Function.Name = c.Function.Index, c.Function.Name
			tc.Function.Arguments = templateArgs(c.Function.Arguments)
			tm.ToolCalls = append(tm.ToolCalls, tc)
		}
		out[i] = tm
	}
	return out
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		os.Exit(2)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template:", err)
		os.Exit(3)
	}
	system, messages := collate(req.Messages)
	var tools templateTools
	if req.Tools != nil {
		tools = convertTools(req.Tools)
	}
	data := map[string]any{"System": system, "Messages": convertMessages(messages), "Tools": tools,
		"Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		fmt.Fprintln(os.Stderr, "execute:", err)
		os.Exit(4)
	}
}
