"""Signature-preserving decorators.

Compatible with the parts of the `decorator` package (4.0.10) that prometheus_client
vendors and uses: ``decorate``, ``decorator`` and ``getargspec``. ``decorate`` compiles
a wrapper with the decorated function's exact parameter list, so argument errors are
raised before the caller runs. If the caller is a coroutine function the wrapper is an
``async def`` that awaits it.
"""

import collections
import inspect
import itertools
import keyword
from inspect import getfullargspec  # noqa: F401  (re-exported like the reference)

__version__ = '4.0.10'

ArgSpec = collections.namedtuple('ArgSpec', 'args varargs varkw defaults')


def getargspec(f):
    """A replacement for the removed inspect.getargspec."""
    spec = getfullargspec(f)
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


# Each generated function gets its own pseudo file name (profilers key on it).
_compile_count = itertools.count()

_P = inspect.Parameter


def _fresh_name(base, taken):
    while base in taken:
        base += '_'
    return base


def _build_source(def_name, params, call_name, func_name, is_async):
    """Source of `def def_name(<params>): return call_name(func_name, <args>)`."""
    signature, call_args = [], []
    star_written = False
    for i, p in enumerate(params):
        kind = p.kind
        if kind is _P.POSITIONAL_ONLY:
            signature.append(p.name)
            call_args.append(p.name)
            if i + 1 == len(params) or params[i + 1].kind is not _P.POSITIONAL_ONLY:
                signature.append('/')
        elif kind is _P.POSITIONAL_OR_KEYWORD:
            signature.append(p.name)
            call_args.append(p.name)
        elif kind is _P.VAR_POSITIONAL:
            signature.append('*' + p.name)
            call_args.append('*' + p.name)
            star_written = True
        elif kind is _P.KEYWORD_ONLY:
            if not star_written:
                signature.append('*')
                star_written = True
            signature.append(p.name)
            call_args.append('%s=%s' % (p.name, p.name))
        else:  # VAR_KEYWORD
            signature.append('**' + p.name)
            call_args.append('**' + p.name)
    call = '%s(%s)' % (call_name, ', '.join([func_name] + call_args))
    if is_async:
        return 'async def %s(%s):\n    return await %s\n' % (def_name, ', '.join(signature), call)
    return 'def %s(%s):\n    return %s\n' % (def_name, ', '.join(signature), call)


def _wrapper_source(func, is_async):
    """(def_name, params, call_name, func_name, source) of the wrapper of func, after the
    reference's checks (func must be a plain function)."""
    # Attribute access order as in the reference (AttributeError before TypeError).
    name = func.__name__
    func.__doc__, func.__module__
    if not inspect.isfunction(func):
        raise TypeError('You are decorating a non function: %s' % func)
    # Same signature source as getfullargspec: honours __signature__, does not follow __wrapped__.
    params = list(inspect.signature(func, follow_wrapped=False).parameters.values())

    def_name = name if name.isidentifier() and not keyword.iskeyword(name) else '_lambda_'
    taken = {p.name for p in params} | {def_name}
    call_name = _fresh_name('_call_', taken)
    func_name = _fresh_name('_func_', taken | {call_name})
    src = _build_source(def_name, params, call_name, func_name, is_async)
    return def_name, params, call_name, func_name, src


def decorate(func, caller):
    """Return a function with func's signature and metadata that calls caller(func, *args, **kwargs)."""
    def_name, params, call_name, func_name, src = _wrapper_source(
        func, inspect.iscoroutinefunction(caller))
    name, doc, module = func.__name__, func.__doc__, func.__module__

    namespace = {call_name: caller, func_name: func}
    code = compile(src, '<decorator-gen-%d>' % next(_compile_count), 'exec')
    exec(code, namespace)
    fun = namespace[def_name]

    positional_defaults = tuple(
        p.default for p in params
        if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) and p.default is not _P.empty)
    kw_defaults = {
        p.name: p.default for p in params
        if p.kind is _P.KEYWORD_ONLY and p.default is not _P.empty}
    fun.__defaults__ = positional_defaults or None
    fun.__kwdefaults__ = kw_defaults or None
    fun.__annotations__ = func.__annotations__
    fun.__name__ = name
    fun.__doc__ = doc
    fun.__module__ = module
    fun.__qualname__ = func.__qualname__
    fun.__dict__ = func.__dict__.copy()
    fun.__wrapped__ = func
    fun.__source__ = src
    return fun


def decorator(caller, _func=None):
    """decorator(caller) converts a caller function into a decorator."""
    if _func is not None:
        return decorate(_func, caller)

    def _decorator(func):
        return decorate(func, caller)

    if inspect.isclass(caller):
        name = caller.__name__.lower()
        doc = 'decorator(%s) converts functions/generators into factories of %s objects' % (
            caller.__name__, caller.__name__)
    elif inspect.isfunction(caller):
        name = '_lambda_' if caller.__name__ == '<lambda>' else caller.__name__
        doc = caller.__doc__
    else:  # an object with a __call__ method
        name = caller.__class__.__name__.lower()
        doc = caller.__call__.__doc__
    _decorator.__name__ = _decorator.__qualname__ = name
    _decorator.__doc__ = doc
    _decorator.__module__ = caller.__module__
    _decorator.__wrapped__ = caller
    return _decorator
