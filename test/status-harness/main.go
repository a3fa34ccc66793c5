// Command status-harness tells what the two GitOps tools would make of
// violin.dev objects, using their own code rather than a re-implementation:
//
//	status-harness kstatus < objects.json
//	    Flux's view: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute.
//	status-harness argocd-health SCRIPT.lua < objects.json
//	    Argo CD's view: the resource health check SCRIPT run by gopher-lua,
//	    the interpreter Argo CD embeds, the way Argo CD runs it (the object
//	    as the global `obj`, the script returning a health table).
//
// objects.json is a JSON array of Kubernetes objects as the API server
// returned them; the answer is a JSON array of {status, message}, one per
// object, in order.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Argo CD rejects a health check that returns any other status.
var argoHealthStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "status-harness:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: status-harness kstatus | argocd-health SCRIPT.lua  (objects as a JSON array on stdin)")
	}
	var objects []map[string]any
	if err := json.NewDecoder(in).Decode(&objects); err != nil {
		return fmt.Errorf("reading the objects (a JSON array) from stdin: %w", err)
	}
	var verdicts []verdict
	var err error
	switch args[0] {
	case "kstatus":
		verdicts, err = kstatusOf(objects)
	case "argocd-health":
		if len(args) != 2 {
			return errors.New("usage: status-harness argocd-health SCRIPT.lua")
		}
		verdicts, err = argoHealthOf(objects, args[1])
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(verdicts)
}

func kstatusOf(objects []map[string]any) ([]verdict, error) {
	verdicts := make([]verdict, 0, len(objects))
	for i, object := range objects {
		// Integers as the API server's client would hand them over (int64, not float64),
		// so that kstatus's metadata.generation / status.observedGeneration lookups find them.
		u := &unstructured.Unstructured{Object: normalizeNumbers(object).(map[string]any)}
		result, err := status.Compute(u)
		if err != nil {
			return nil, fmt.Errorf("object %d (%s %s): %w", i, u.GetKind(), u.GetName(), err)
		}
		verdicts = append(verdicts, verdict{Status: result.Status.String(), Message: result.Message})
	}
	return verdicts, nil
}

// normalizeNumbers turns whole float64s from encoding/json into int64, as
// unstructured.Unstructured holds them when decoded by client-go.
func normalizeNumbers(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = normalizeNumbers(item)
		}
		return v
	case []any:
		for i, item := range v {
			v[i] = normalizeNumbers(item)
		}
		return v
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
		return v
	default:
		return v
	}
}

func argoHealthOf(objects []map[string]any, scriptPath string) ([]verdict, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return nil, err
	}
	verdicts := make([]verdict, 0, len(objects))
	for i, object := range objects {
		v, err := runHealthScript(string(script), object)
		if err != nil {
			return nil, fmt.Errorf("object %d: %s: %w", i, scriptPath, err)
		}
		verdicts = append(verdicts, v)
	}
	return verdicts, nil
}

// runHealthScript runs one check in a fresh interpreter, as Argo CD does for
// every resource, with only the libraries a health check may rely on.
func runHealthScript(script string, object map[string]any) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the script returned %s, not a health table", l.Get(-1).Type())
	}
	v := verdict{Status: lua.LVAsString(table.RawGetString("status")), Message: lua.LVAsString(table.RawGetString("message"))}
	if !slices.Contains(argoHealthStatuses, v.Status) {
		return verdict{}, fmt.Errorf("the script returned status %q, which Argo CD does not accept", v.Status)
	}
	return v, nil
}

// toLua converts decoded JSON into Lua values: objects become tables keyed by
// name, arrays tables indexed from 1, numbers Lua numbers, null nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := l.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	case []any:
		table := l.NewTable()
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}
