// Command pulumi-language-nodejs is a small Node.js language host for the
// Pulumi CLI.
//
// Why it exists: the upstream language host is a separate Go module that is
// not obtainable from the module proxy our machines use, while the CLI
// (github.com/pulumi/pulumi/pkg/v3) and the SDK (github.com/pulumi/pulumi/sdk/v3)
// are. The CLI finds a language host named pulumi-language-<runtime> next to
// its own binary (or on PATH), starts it with the engine's gRPC address as the
// last argument, reads the port it prints on stdout and then speaks the
// pulumirpc.LanguageRuntime protocol to it. This program implements the part
// of that protocol that `pulumi preview/up/destroy/refresh/install/about`,
// policy packs and the Automation API use; code generation, packing and
// linking answer Unimplemented.
//
// What it leaves out, by design, to stay small:
//   - no proxy of the resource monitor and no "--sync" pipes: the Node.js SDK
//     talks to the engine's monitor directly. The pipes served synchronous
//     invokes, which @pulumi/pulumi (3.259) no longer makes;
//   - no debugger attachment, no Bun runtime, no fnm/.nvmrc handling, no
//     quoting in the nodeargs option (it is split on whitespace).
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/nodejs/npm"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const (
	// runModule is the entry point of @pulumi/pulumi that loads and runs the
	// user's program; it is resolved from the program directory so that the
	// program's own copy of the SDK is used.
	runModule = "@pulumi/pulumi/cmd/run"

	// exitCodeUserMessageShown is the exit code @pulumi/pulumi's runner uses
	// when it has already reported the error to the user through the engine:
	// the host must then "bail" (fail quietly) instead of adding a message.
	exitCodeUserMessageShown = 32
)

// runPolicyPackWithoutTypeScript is our entry point for policy packs that set
// `typescript: false`: @pulumi/pulumi's cmd/run-policy-pack always loads
// ts-node, which cannot compile a pack written for Node's type stripping.
//
//go:embed run-policy-pack.cjs
var runPolicyPackWithoutTypeScript string

func main() {
	// The CLI may pass --logtostderr, -v=N (registered by the logging
	// package's glog dependency) and --tracing before the engine address.
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint (passed on to the program)")
	runtimeName := flag.String("runtime", "nodejs", "runtime to use; only nodejs is supported")
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	logging.InitLogging(false, 0, false)
	if *runtimeName != "nodejs" {
		cmdutil.Exit(fmt.Errorf("unsupported runtime %q: this language host only runs nodejs", *runtimeName))
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	serverCancel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(serverCancel)
	}()

	// Exit when the engine goes away, so that a crashed CLI leaves no orphans.
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check: %w", err))
		}
	}

	host := newHost(engineAddress, *tracing)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: serverCancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}

	// The CLI reads exactly one line from stdout: the port we listen on.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	tracing       string

	// cancelCtx is cancelled by the Cancel RPC; running node processes get
	// SIGINT so that the SDK can shut down cleanly.
	cancelCtx context.Context
	cancel    context.CancelFunc
}

func newHost(engineAddress, tracing string) *nodeHost {
	ctx, cancel := context.WithCancel(context.Background())
	return &nodeHost{engineAddress: engineAddress, tracing: tracing, cancelCtx: ctx, cancel: cancel}
}

func (h *nodeHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// Handshake is only sent when the CLI attaches to an already running host
// (PULUMI_DEBUG_LANGUAGES); a spawned host gets the address as an argument.
func (h *nodeHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *nodeHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *nodeHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

// nodeOptions are the `runtime.options` of Pulumi.yaml that matter here.
type nodeOptions struct {
	typescript     bool
	tsconfig       string
	nodeargs       []string
	packagemanager npm.PackageManagerType
	production     bool
}

func parseOptions(info *pulumirpc.ProgramInfo) (nodeOptions, error) {
	opts := nodeOptions{typescript: true, packagemanager: npm.AutoPackageManager}
	raw := info.GetOptions().AsMap()
	var ok bool
	if v, has := raw["typescript"]; has {
		if opts.typescript, ok = v.(bool); !ok {
			return opts, errors.New("runtime option typescript must be a boolean")
		}
	}
	if v, has := raw["tsconfig"]; has {
		if opts.tsconfig, ok = v.(string); !ok {
			return opts, errors.New("runtime option tsconfig must be a string")
		}
	}
	if v, has := raw["nodeargs"]; has {
		s, ok := v.(string)
		if !ok {
			return opts, errors.New("runtime option nodeargs must be a string")
		}
		// Whitespace splitting only: quoted arguments are not supported.
		opts.nodeargs = strings.Fields(s)
	}
	if v, has := raw["production"]; has {
		if opts.production, ok = v.(bool); !ok {
			return opts, errors.New("runtime option production must be a boolean")
		}
	}
	if v, has := raw["packagemanager"]; has {
		s, ok := v.(string)
		if !ok {
			return opts, errors.New("runtime option packagemanager must be a string")
		}
		opts.packagemanager = npm.PackageManagerType(s)
	}
	return opts, nil
}

// GetRequiredPlugins is the deprecated form of GetRequiredPackages; the CLI
// only falls back to it when GetRequiredPackages is Unimplemented.
func (h *nodeHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "use GetRequiredPackages")
}

// GetRequiredPackages reports the resource plugins the program needs: every
// package.json under a node_modules directory below the program directory
// whose "pulumi" section says {"resource": true}. The CLI installs (or, with
// automatic acquisition disabled, checks) these plugins before running.
func (h *nodeHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	var pkgs []*pulumirpc.PackageDependency
	seen := map[string]bool{}
	visited := map[string]bool{}
	err := walkPackages(req.GetInfo().GetProgramDirectory(), false, visited, func(path string, pj packageJSON) {
		dep, err := packageDependency(pj)
		if err != nil {
			logging.V(3).Infof("skipping %s: %v", path, err)
			return
		}
		if dep == nil || seen[dep.Name+"@"+dep.Version] {
			return
		}
		seen[dep.Name+"@"+dep.Version] = true
		pkgs = append(pkgs, dep)
	})
	if err != nil {
		// Like the upstream host: report what was found, log the rest.
		logging.V(3).Infof("errors while discovering plugins: %v", err)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

type packageJSON struct {
	Name    string                  `json:"name"`
	Version string                  `json:"version"`
	Pulumi  plugin.PulumiPluginJSON `json:"pulumi"`
}

// walkPackages visits dir recursively (following symlinks once, as npm
// workspaces and `npm link` use them) and calls found for each package.json
// that lies inside a node_modules tree. Nested policy packs are skipped: their
// plugins belong to the policy pack, not to the program.
func walkPackages(dir string, inNodeModules bool, visited map[string]bool, found func(string, packageJSON)) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if visited[dir] {
		return nil
	}
	visited[dir] = true

	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				continue // dangling link: nothing to find there
			}
			isDir = fi.IsDir()
		}
		switch {
		case isDir && e.Name() == ".git":
			// Never holds packages; skipping it keeps big repositories fast.
		case isDir:
			if pp, err := workspace.DetectPolicyPackPathAt(path); err == nil && pp != "" {
				continue
			}
			errs = append(errs, walkPackages(path, inNodeModules || filepath.Base(dir) == "node_modules", visited, found))
		case inNodeModules && e.Name() == "package.json":
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var pj packageJSON
			if err := json.Unmarshal(b, &pj); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			found(path, pj)
		}
	}
	return errors.Join(errs...)
}

// packageDependency turns a package.json into the plugin it needs, or nil.
// The plugin name defaults to the package name without its @pulumi/ scope;
// other scopes must name their plugin. The version defaults to the package's.
func packageDependency(pj packageJSON) (*pulumirpc.PackageDependency, error) {
	if !pj.Pulumi.Resource {
		return nil, nil
	}
	name := pj.Pulumi.Name
	if name == "" {
		if !strings.HasPrefix(pj.Name, "@pulumi/") {
			return nil, fmt.Errorf("package %q has no plugin name in its \"pulumi\" section", pj.Name)
		}
		name = strings.TrimPrefix(pj.Name, "@pulumi/")
	}
	ver := pj.Pulumi.Version
	if ver == "" {
		ver = pj.Version
	}
	if ver == "" {
		return nil, fmt.Errorf("package %q has no version", pj.Name)
	}
	if !strings.HasPrefix(ver, "v") {
		ver = "v" + ver
	}
	dep := &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: ver, Server: pj.Pulumi.Server}
	if p := pj.Pulumi.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	if p := pj.Pulumi.ExtensionParameterization; p != nil {
		dep.Extension = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}

// resolveModule asks node where a module resolves from dir, so that the
// program's own node_modules (and Node's lookup rules) decide.
func resolveModule(nodeBin, dir, mod string) (string, error) {
	script := fmt.Sprintf("try{console.log(require.resolve(%q))}catch(e){"+
		"console.error(e.code==='MODULE_NOT_FOUND'?"+
		"'The Pulumi SDK (@pulumi/pulumi) is not installed: run npm install (or pulumi install).':e.message);"+
		"process.exit(1)}", mod)
	cmd := exec.Command(nodeBin, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", errors.New(strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Run runs the program once for the engine: `node [nodeargs] .../cmd/run
// --monitor ... <entry point> [args]`, with configuration in environment
// variables where @pulumi/pulumi's runtime reads it.
func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the PATH: " + err.Error()}, nil
	}
	opts, err := parseOptions(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runPath, err := resolveModule(nodeBin, info.GetProgramDirectory(), runModule)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := append([]string{}, opts.nodeargs...)
	args = append(args, runPath)
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engine())
	flagArg("organization", req.GetOrganization())
	flagArg("project", req.GetProject())
	flagArg("root-directory", info.GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("tracing", h.tracing)
	args = append(args, info.GetEntryPoint())
	args = append(args, req.GetArgs()...)

	cfg, err := configJSON(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: "failed to serialize configuration: " + err.Error()}, nil
	}
	secretKeys, err := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "PULUMI_CONFIG="+cfg, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	// Stop the program on the Cancel RPC or when the engine drops the call;
	// SIGINT first so the SDK can flush, a kill 5 s later.
	cmdCtx, cmdCancel := context.WithCancel(h.cancelCtx)
	defer cmdCancel()
	stopAfter := context.AfterFunc(ctx, cmdCancel)
	defer stopAfter()
	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	// Node may switch its stdio to non-blocking mode; handing it our own
	// file descriptors could then break our writes. Wrapping the writers
	// makes exec copy through pipes instead.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	cmd.Stderr = struct{ io.Writer }{os.Stderr}

	logging.V(5).Infof("launching %s %s", nodeBin, strings.Join(args, " "))
	err = cmd.Run()
	if err == nil {
		return &pulumirpc.RunResponse{}, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return &pulumirpc.RunResponse{Error: "could not run node: " + err.Error()}, nil
	}
	switch code := ee.ExitCode(); code {
	case exitCodeUserMessageShown:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case -1:
		return &pulumirpc.RunResponse{Error: "Program was terminated: " + ee.String()}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", code)}, nil
	}
}

// configJSON renders the stack configuration as @pulumi/pulumi expects it
// in PULUMI_CONFIG. Keys are sent in the legacy "<namespace>:config:<name>"
// form, which every SDK version understands.
func configJSON(cfg map[string]string) (string, error) {
	out := make(map[string]string, len(cfg))
	for k, v := range cfg {
		key, err := config.ParseKey(k)
		if err != nil {
			return "", err
		}
		out[key.Namespace()+":config:"+key.Name()] = v
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// InstallDependencies serves `pulumi install` (and `pulumi new`): it runs the
// project's package manager (npm unless a lock file or the packagemanager
// option says otherwise) and streams its output back to the CLI.
func (h *nodeHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	if root, err := npm.FindWorkspaceRoot(dir); err == nil {
		dir = root
	}
	fmt.Fprintln(stdout, "Installing dependencies...")
	if _, err := npm.Install(server.Context(), opts.packagemanager, dir, opts.production, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Finished installing dependencies")
	return closer.Close()
}

// RuntimeOptionsPrompts asks nothing: `pulumi new` then uses the defaults.
func (h *nodeHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// About serves `pulumi about`: the node binary, its version and the
// package manager in use.
func (h *nodeHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find node on the PATH: %w", err)
	}
	resp := &pulumirpc.AboutResponse{Executable: nodeBin, Metadata: map[string]string{}}
	if out, err := exec.CommandContext(ctx, nodeBin, "--version").Output(); err == nil {
		resp.Version = strings.TrimSpace(string(out))
	}
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if pm, err := npm.ResolvePackageManager(opts.packagemanager, req.GetInfo().GetProgramDirectory()); err == nil {
		resp.Metadata["packagemanager"] = pm.Name()
	}
	return resp, nil
}

// GetProgramDependencies lists the program's npm packages (from the lock
// file), for `pulumi about` and update metadata.
func (h *nodeHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	dir := req.GetInfo().GetProgramDirectory()
	pm, err := npm.ResolvePackageManager(opts.packagemanager, dir)
	if err != nil {
		return nil, err
	}
	pkgs, err := pm.ListPackages(ctx, dir, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("failed to list node dependencies: %w", err)
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pkgs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}

// RunPlugin runs a plugin written in Node.js from its directory: a policy
// pack (kind "analyzer", for `pulumi preview --policy-pack DIR`) or a plugin
// with a PulumiPlugin.yaml. Its output is streamed to the CLI, which reads the
// plugin's gRPC port from the first line of stdout.
// A policy pack whose PulumiPolicy.yaml sets `typescript: false` runs through
// our own entry point (run-policy-pack.cjs), so Node loads its TypeScript.
func (h *nodeHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("could not find node on the PATH: %w", err)
	}
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	policyPack := req.GetKind() == string(apitype.AnalyzerPlugin)
	mod := "@pulumi/pulumi/cmd/run-plugin"
	switch {
	case policyPack && !opts.typescript:
		mod = "@pulumi/pulumi/cmd/run-policy-pack/run"
	case policyPack:
		mod = "@pulumi/pulumi/cmd/run-policy-pack"
	}
	runPath, err := resolveModule(nodeBin, dir, mod)
	if err != nil {
		return err
	}

	// The CLI sends the whole environment the plugin should see.
	env := req.GetEnv()
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}
	args := append(append([]string{}, opts.nodeargs...), runPath)
	if policyPack && !opts.typescript {
		// Our entry point, given the SDK's runner to call with ts-node off.
		args = append(append([]string{}, opts.nodeargs...), "-e", runPolicyPackWithoutTypeScript, "--", runPath)
	}
	cmd := exec.CommandContext(ctx, nodeBin)
	cmd.Stderr = stderr

	if !policyPack {
		cmd.Args = append(append(append(cmd.Args, args...), dir), req.GetArgs()...)
		cmd.Dir, cmd.Env, cmd.Stdout = req.GetPwd(), env, stdout
		return pluginExit(cmd.Run(), closer)
	}

	// Policy packs take the engine's stack configuration from environment
	// variables, but the engine only sends it over gRPC after the plugin has
	// started. The SDK's PolicyProxy answers the engine first (printing its
	// own port), hands us the configuration, then forwards every call to the
	// real policy pack once it is running.
	proxy, proxyStdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("could not start the policy pack proxy: %w", err)
	}
	stack, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("could not get the stack configuration: %w", err)
	}
	if stack != nil {
		setenv := func(k, v string) {
			if v != "" {
				env = append(env, k+"="+v)
			}
		}
		setenv("PULUMI_NODEJS_ORGANIZATION", stack.GetOrganization())
		setenv("PULUMI_NODEJS_PROJECT", stack.GetProject())
		setenv("PULUMI_NODEJS_STACK", stack.GetStack())
		setenv("PULUMI_NODEJS_DRY_RUN", strconv.FormatBool(stack.GetDryRun()))
		if stack.GetConfig() != nil {
			b, err := json.Marshal(stack.GetConfig())
			if err != nil {
				return err
			}
			setenv("PULUMI_CONFIG", string(b))
		}
	}
	// Policy packs take their directory last and run inside it.
	cmd.Args = append(append(append(cmd.Args, args...), req.GetArgs()...), dir)
	cmd.Dir, cmd.Env, cmd.Stdout = dir, env, proxyStdout
	if err := cmd.Start(); err != nil {
		return pluginExit(err, closer)
	}
	return pluginExit(proxy.Attach(ctx, cmd), closer)
}

// pluginExit turns a plugin's exit into RunPlugin's result, flushing the
// output streams on success.
func pluginExit(err error, closer io.Closer) error {
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return fmt.Errorf("Program exited with non-zero exit code: %d", ee.ExitCode())
	case err != nil:
		return fmt.Errorf("could not run the plugin: %w", err)
	}
	return closer.Close()
}
