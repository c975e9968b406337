-- BetJeeScript: traders' bots in a small JavaScript-shaped language (docs/bots.md). The
-- tokenizer, the parser (source to a jsonb tree), the auditor (what the tree may do) and the
-- evaluator (a run: the tree against the state it sees, giving actions and a log) are here, so
-- the program that decides what is allowed is the program that runs it.
-- Invariants kept here: a stored tree passed the auditor; an evaluation reads the exchange only
-- through its recorded inputs (replaying them gives the same actions and log); a run performs
-- no action of an evaluation that failed.

---------------------------------------------------------------------------------------------
-- Refusals

-- Refuse a program: BJ040, the construct and where ("loops are not allowed: `while` at 3:5").
create or replace function bj.bs_refuse(p_what text, p_at jsonb) returns void
language plpgsql stable as $$
begin
  perform bj.raise('BJ040', format('%s at %s:%s', p_what, p_at ->> 0, p_at ->> 1));
end $$;

---------------------------------------------------------------------------------------------
-- Tokens

-- The source as tokens, each [kind, text, line, column]: kind num, str, id, op, or eof last.
-- Whitespace and comments go; a string's text is its value (escapes read). What no token of the
-- language starts with is refused here.
create or replace function bj.bs_tokens(p_src text) returns jsonb
language plpgsql immutable as $$
declare
  c text[] := regexp_split_to_array(p_src, '');
  k int[];       -- each character's code point: comparing numbers is what a scanner does most
  n int;
  i int := 1;
  v_line int := 1;
  v_col int := 1;
  v_out jsonb[] := '{}';
  v_start int;
  v_at jsonb;
  v_text text;
  v_ch text;
  v_quote text;
  v_op text;
  v_two text;
  v_parens int := 0;
begin
  if p_src = '' then
    c := '{}';
  end if;
  n := coalesce(cardinality(c), 0);
  k := array(select ascii(x) from unnest(c) x);
  while i <= n loop
    v_ch := c[i];
    v_at := jsonb_build_array(v_line, v_col);
    if k[i] in (32, 9, 13) then
      i := i + 1; v_col := v_col + 1;
    elsif k[i] = 10 then
      i := i + 1; v_line := v_line + 1; v_col := 1;
    elsif k[i] = 47 and i < n and k[i + 1] = 47 then  -- //
      while i <= n and k[i] <> 10 loop
        i := i + 1; v_col := v_col + 1;
      end loop;
    elsif k[i] = 47 and i < n and k[i + 1] = 42 then  -- /*
      i := i + 2; v_col := v_col + 2;
      loop
        if i > n then
          perform bj.bs_refuse('an unterminated comment', v_at);
        end if;
        exit when k[i] = 42 and i < n and k[i + 1] = 47;
        if k[i] = 10 then v_line := v_line + 1; v_col := 1; else v_col := v_col + 1; end if;
        i := i + 1;
      end loop;
      i := i + 2; v_col := v_col + 2;
    elsif k[i] between 48 and 57 then  -- a number
      v_start := i;
      while i <= n and k[i] between 48 and 57 loop i := i + 1; end loop;
      if i < n and k[i] = 46 and k[i + 1] between 48 and 57 then
        i := i + 1;
        while i <= n and k[i] between 48 and 57 loop i := i + 1; end loop;
      end if;
      if i <= n and (k[i] between 48 and 57 or k[i] between 65 and 90 or k[i] between 97 and 122 or k[i] in (95, 36)) then
        perform bj.bs_refuse(format('unexpected `%s`', c[i]), jsonb_build_array(v_line, v_col + i - v_start));
      end if;
      v_out := v_out || jsonb_build_array('num', array_to_string(c[v_start:i - 1], ''), v_line, v_col);
      v_col := v_col + i - v_start;
    elsif k[i] between 65 and 90 or k[i] between 97 and 122 or k[i] = 95 then  -- a name
      v_start := i;
      while i <= n and (k[i] between 48 and 57 or k[i] between 65 and 90 or k[i] between 97 and 122 or k[i] = 95) loop
        i := i + 1;
      end loop;
      if i <= n and k[i] = 36 then
        perform bj.bs_refuse('unexpected `$`', jsonb_build_array(v_line, v_col + i - v_start));
      end if;
      v_out := v_out || jsonb_build_array('id', array_to_string(c[v_start:i - 1], ''), v_line, v_col);
      v_col := v_col + i - v_start;
    elsif k[i] in (34, 39) then  -- a string
      v_quote := v_ch;
      v_text := '';
      i := i + 1; v_col := v_col + 1;
      loop
        if i > n or k[i] = 10 then
          perform bj.bs_refuse('an unterminated string', v_at);
        end if;
        exit when c[i] = v_quote;
        if k[i] = 92 then
          if i = n then
            perform bj.bs_refuse('an unterminated string', v_at);
          end if;
          case c[i + 1]
            when '\' then v_text := v_text || '\';
            when '"' then v_text := v_text || '"';
            when '''' then v_text := v_text || '''';
            when 'n' then v_text := v_text || E'\n';
            else perform bj.bs_refuse(format('the escape `\%s` is not in the language', c[i + 1]),
                                      jsonb_build_array(v_line, v_col));
          end case;
          i := i + 2; v_col := v_col + 2;
        else
          v_text := v_text || c[i];
          i := i + 1; v_col := v_col + 1;
        end if;
      end loop;
      v_out := v_out || jsonb_build_array('str', v_text, v_at -> 0, v_at -> 1);
      i := i + 1; v_col := v_col + 1;
    elsif k[i] = 96 then
      perform bj.bs_refuse('template literals are not allowed: `` ` ``', v_at);
    else
      -- operators, longest first; what the language lacks is refused by the parser, by name
      v_two := v_ch || coalesce(c[i + 1], '');
      v_op := case when v_two || coalesce(c[i + 2], '') in ('===', '!==', '**=', '...', '>>>') then v_two || c[i + 2]
                   when v_two in ('==', '!=', '<=', '>=', '&&', '||', '=>', '++', '--', '+=', '-=', '*=', '/=',
                                  '%=', '**', '?.', '??', '<<', '>>', '&=', '|=', '^=') then v_two
                   when v_ch in ('(', ')', '{', '}', ';', ',', '?', ':', '+', '-', '*', '/', '!', '<', '>', '=',
                                 '.', '[', ']', '%', '&', '|', '^', '~') then v_ch end;
      if v_op is null then
        perform bj.bs_refuse(format('unexpected `%s`', v_ch), v_at);
      end if;
      -- parentheses (of calls and of grouping) nested more than 64 deep are refused: grouping
      -- makes no node of the tree, so the tree's depth would not bound them
      if v_op = '(' then
        v_parens := v_parens + 1;
        if v_parens > 64 then
          perform bj.bs_refuse('parentheses nested more than 64 deep', v_at);
        end if;
      elsif v_op = ')' then
        v_parens := v_parens - 1;
      end if;
      v_out := v_out || jsonb_build_array('op', v_op, v_line, v_col);
      i := i + length(v_op); v_col := v_col + length(v_op);
    end if;
  end loop;
  return to_jsonb(v_out || jsonb_build_array('eof', '', v_line, v_col));
end $$;

---------------------------------------------------------------------------------------------
-- The parser: recursive descent over the tokens, one function per level. Each answers the node
-- it read and the position after it. Its recursion is bounded (and so a chain of operators,
-- which it reads in a loop but which nests in the tree); the auditor then refuses a tree deeper
-- than 64 levels.

create or replace function bj.bs_at(p_tok jsonb) returns jsonb
language sql immutable
return jsonb_build_array(p_tok -> 2, p_tok -> 3);

-- The words no name may be: the language's keywords and JavaScript's it lacks (the one list;
-- an array constructor, where a literal '{...}' would read null as NULL).
create or replace function bj.bs_reserved(p_word text) returns boolean
language sql immutable
return p_word = any (array['for', 'while', 'do', 'function', 'class', 'let', 'var', 'new',
                     'this', 'eval', 'switch', 'case', 'break', 'continue', 'try', 'catch',
                     'throw', 'typeof', 'instanceof', 'in', 'of', 'delete', 'void', 'yield',
                     'async', 'await', 'import', 'export', 'with', 'debugger', 'default',
                     'extends', 'super', 'null', 'undefined', 'else', 'const', 'if', 'return',
                     'finally']);

-- What a token that cannot stand where it stands is, said as the language's refusal.
create or replace function bj.bs_unexpected(p_tok jsonb) returns void
language plpgsql stable as $$
declare
  v_k text := p_tok ->> 0;
  v_t text := p_tok ->> 1;
  v_at jsonb := bj.bs_at(p_tok);
begin
  if v_k = 'id' and v_t in ('for', 'while', 'do') then
    perform bj.bs_refuse(format('loops are not allowed: `%s`', v_t), v_at);
  elsif v_k = 'id' and v_t in ('function', 'class') then
    perform bj.bs_refuse(format('defining functions is not allowed: `%s`', v_t), v_at);
  elsif v_k = 'id' and v_t in ('let', 'var') then
    perform bj.bs_refuse(format('only const declarations are allowed: `%s`', v_t), v_at);
  elsif v_k = 'id' and v_t in ('new', 'this', 'eval') then
    perform bj.bs_refuse(format('`%s` is not allowed', v_t), v_at);
  elsif v_k = 'id' and bj.bs_reserved(v_t) then
    perform bj.bs_refuse(format('`%s` is not in the language here', v_t), v_at);
  elsif v_k = 'op' and v_t in ('.', '[', '?.') then
    perform bj.bs_refuse(format('member access is not allowed: `%s`', v_t), v_at);
  elsif v_k = 'op' and v_t = '=>' then
    perform bj.bs_refuse('defining functions is not allowed: `=>`', v_at);
  elsif v_k = 'op' and v_t in ('=', '+=', '-=', '*=', '/=', '%=', '**=', '&=', '|=', '^=', '++', '--') then
    perform bj.bs_refuse(format('assignment is not allowed: `%s`', v_t), v_at);
  elsif v_k = 'op' and v_t in ('==', '!=') then
    perform bj.bs_refuse(format('`%s` is not in the language (write %s)', v_t,
                                case v_t when '==' then '===' else '!==' end), v_at);
  elsif v_k = 'op' and v_t = '/' then
    perform bj.bs_refuse('regular-expression literals are not allowed: `/`', v_at);
  elsif v_k = 'eof' then
    perform bj.bs_refuse('the program ends too early', v_at);
  elsif v_k = 'op' then
    perform bj.bs_refuse(format('`%s` is not in the language here', v_t), v_at);
  else
    perform bj.bs_refuse(format('unexpected `%s`', v_t), v_at);
  end if;
end $$;

-- Expect an operator token; refuse anything else.
create or replace function bj.bs_expect(p_toks jsonb, p_pos int, p_op text) returns int
language plpgsql stable as $$
declare
  v_tok jsonb := p_toks -> p_pos;
begin
  if v_tok ->> 0 <> 'op' or v_tok ->> 1 <> p_op then
    if v_tok ->> 0 in ('eof', 'op') or v_tok ->> 0 = 'id' and v_tok ->> 1 in
       ('for', 'while', 'do', 'function', 'class', 'let', 'var', 'new', 'this', 'eval') then
      perform bj.bs_unexpected(v_tok);
    end if;
    perform bj.bs_refuse(format('`%s` expected, not `%s`', p_op, v_tok ->> 1), bj.bs_at(v_tok));
  end if;
  return p_pos + 1;
end $$;

-- (the parser's own bound on its recursion, generous: the tree's depth is the auditor's rule)
create or replace function bj.bs_depth(p_depth int, p_tok jsonb) returns void
language plpgsql stable as $$
begin
  if p_depth > 400 then
    perform bj.bs_refuse('nesting deeper than 64 levels', bj.bs_at(p_tok));
  end if;
end $$;

create or replace function bj.bs_primary(p_toks jsonb, p_pos int, p_depth int, out node jsonb, out pos int)
language plpgsql stable as $$
declare
  v_tok jsonb := p_toks -> p_pos;
  v_k text := v_tok ->> 0;
  v_t text := v_tok ->> 1;
  v_at jsonb := bj.bs_at(v_tok);
  v_args jsonb := '[]';
  v_arg record;
begin
  perform bj.bs_depth(p_depth, v_tok);
  pos := p_pos + 1;
  if v_k = 'num' then
    node := jsonb_build_object('t', 'num', 'at', v_at, 'v', v_t);
  elsif v_k = 'str' then
    node := jsonb_build_object('t', 'str', 'at', v_at, 'v', v_t);
  elsif v_k = 'id' and v_t in ('true', 'false') then
    node := jsonb_build_object('t', 'bool', 'at', v_at, 'v', v_t = 'true');
  elsif v_k = 'id' and not bj.bs_reserved(v_t) then
    if (p_toks -> pos ->> 0) = 'op' and (p_toks -> pos ->> 1) = '(' then
      pos := pos + 1;
      if not ((p_toks -> pos ->> 0) = 'op' and (p_toks -> pos ->> 1) = ')') then
        loop
          select * into v_arg from bj.bs_expr(p_toks, pos, p_depth + 1);
          v_args := v_args || jsonb_build_array(v_arg.node);
          pos := v_arg.pos;
          exit when not ((p_toks -> pos ->> 0) = 'op' and (p_toks -> pos ->> 1) = ',');
          pos := pos + 1;
        end loop;
      end if;
      pos := bj.bs_expect(p_toks, pos, ')');
      node := jsonb_build_object('t', 'call', 'at', v_at, 'fn', v_t, 'args', v_args);
    else
      node := jsonb_build_object('t', 'name', 'at', v_at, 'name', v_t);
    end if;
  elsif v_k = 'op' and v_t = '(' then
    select * into v_arg from bj.bs_expr(p_toks, pos, p_depth + 1);
    node := v_arg.node;
    pos := bj.bs_expect(p_toks, v_arg.pos, ')');
  else
    perform bj.bs_unexpected(v_tok);
  end if;
  -- what may not follow an operand: member access, a call of a value, assignment, arrows
  v_tok := p_toks -> pos;
  if v_tok ->> 0 = 'op' and v_tok ->> 1 in ('.', '[', '?.', '=>', '=', '+=', '-=', '*=', '/=', '%=', '**=',
                                            '&=', '|=', '^=', '++', '--') then
    perform bj.bs_unexpected(v_tok);
  end if;
  if v_tok ->> 0 = 'op' and v_tok ->> 1 = '(' then
    perform bj.bs_refuse('calling anything but a built-in is not allowed: `(`', bj.bs_at(v_tok));
  end if;
end $$;

create or replace function bj.bs_unary(p_toks jsonb, p_pos int, p_depth int, out node jsonb, out pos int)
language plpgsql stable as $$
declare
  v_tok jsonb := p_toks -> p_pos;
  v_arg record;
begin
  perform bj.bs_depth(p_depth, v_tok);
  if v_tok ->> 0 = 'op' and v_tok ->> 1 in ('!', '-') then
    select * into v_arg from bj.bs_unary(p_toks, p_pos + 1, p_depth + 1);
    node := jsonb_build_object('t', 'unary', 'at', bj.bs_at(v_tok), 'op', v_tok ->> 1, 'arg', v_arg.node);
    pos := v_arg.pos;
  elsif v_tok ->> 0 = 'op' and v_tok ->> 1 in ('++', '--') then
    perform bj.bs_unexpected(v_tok);
  else
    select * into node, pos from bj.bs_primary(p_toks, p_pos, p_depth);
  end if;
end $$;

-- Binary operators by precedence: 1 ||, 2 &&, 3 === !==, 4 < <= > >=, 5 + -, 6 * /.
create or replace function bj.bs_prec(p_tok jsonb) returns int
language sql immutable
return case when p_tok ->> 0 <> 'op' then 0
            else case p_tok ->> 1 when '||' then 1 when '&&' then 2 when '===' then 3 when '!==' then 3
                                  when '<' then 4 when '<=' then 4 when '>' then 4 when '>=' then 4
                                  when '+' then 5 when '-' then 5 when '*' then 6 when '/' then 6
                                  else 0 end end;

create or replace function bj.bs_binary(p_toks jsonb, p_pos int, p_min int, p_depth int,
                                        out node jsonb, out pos int)
language plpgsql stable as $$
declare
  v_tok jsonb;
  v_prec int;
  v_right record;
  v_chain int := 0;
begin
  select * into node, pos from bj.bs_unary(p_toks, p_pos, p_depth + 1);
  loop
    v_tok := p_toks -> pos;
    -- operators the language lacks, named
    if v_tok ->> 0 = 'op' and v_tok ->> 1 in ('==', '!=', '%', '**', '&', '|', '^', '<<', '>>', '>>>', '??', '~') then
      perform bj.bs_unexpected(v_tok);
    end if;
    if v_tok ->> 0 = 'id' and v_tok ->> 1 in ('in', 'instanceof', 'of') then
      perform bj.bs_unexpected(v_tok);
    end if;
    v_prec := bj.bs_prec(v_tok);
    exit when v_prec = 0 or v_prec < p_min;
    v_chain := v_chain + 1;  -- each operator of a chain nests the ones before it a level deeper
    perform bj.bs_depth(p_depth + v_chain, v_tok);
    select * into v_right from bj.bs_binary(p_toks, pos + 1, v_prec + 1, p_depth + 1);
    node := jsonb_build_object('t', case when v_prec <= 2 then 'logical' else 'binary' end,
                               'at', bj.bs_at(v_tok), 'op', v_tok ->> 1, 'left', node, 'right', v_right.node);
    pos := v_right.pos;
  end loop;
end $$;

create or replace function bj.bs_expr(p_toks jsonb, p_pos int, p_depth int, out node jsonb, out pos int)
language plpgsql stable as $$
declare
  v_tok jsonb;
  v_then record;
  v_else record;
begin
  perform bj.bs_depth(p_depth, p_toks -> p_pos);
  select * into node, pos from bj.bs_binary(p_toks, p_pos, 1, p_depth);
  v_tok := p_toks -> pos;
  if v_tok ->> 0 = 'op' and v_tok ->> 1 = '?' then
    select * into v_then from bj.bs_expr(p_toks, pos + 1, p_depth + 1);
    select * into v_else from bj.bs_expr(p_toks, bj.bs_expect(p_toks, v_then.pos, ':'), p_depth + 1);
    node := jsonb_build_object('t', 'cond', 'at', bj.bs_at(v_tok), 'test', node, 'then', v_then.node,
                               'else', v_else.node);
    pos := v_else.pos;
  end if;
end $$;

-- A statement's end: a semicolon, or a new line (or a block's end, or the program's).
create or replace function bj.bs_end(p_toks jsonb, p_pos int, p_line int) returns int
language plpgsql stable as $$
declare
  v_tok jsonb := p_toks -> p_pos;
begin
  if v_tok ->> 0 = 'op' and v_tok ->> 1 = ';' then
    return p_pos + 1;
  end if;
  if v_tok ->> 0 = 'eof' or v_tok ->> 0 = 'op' and v_tok ->> 1 = '}' or (v_tok ->> 2)::int > p_line then
    return p_pos;
  end if;
  perform bj.bs_unexpected(v_tok);
  return null;
end $$;

create or replace function bj.bs_statement(p_toks jsonb, p_pos int, p_depth int, out node jsonb, out pos int)
language plpgsql stable as $$
declare
  v_tok jsonb := p_toks -> p_pos;
  v_at jsonb := bj.bs_at(v_tok);
  v_sub record;
  v_then record;
  v_list jsonb[] := '{}';
  v_name jsonb;
  v_last int;
begin
  perform bj.bs_depth(p_depth, v_tok);
  if v_tok ->> 0 = 'id' and v_tok ->> 1 = 'const' then
    v_name := p_toks -> (p_pos + 1);
    if v_name ->> 0 <> 'id' or bj.bs_reserved(v_name ->> 1) or v_name ->> 1 in ('true', 'false') then
      perform bj.bs_refuse('a name expected after const', bj.bs_at(v_name));
    end if;
    select * into v_sub from bj.bs_expr(p_toks, bj.bs_expect(p_toks, p_pos + 2, '='), p_depth + 1);
    node := jsonb_build_object('t', 'const', 'at', v_at, 'name', v_name ->> 1, 'value', v_sub.node);
    v_last := (p_toks -> (v_sub.pos - 1) ->> 2)::int;
    pos := bj.bs_end(p_toks, v_sub.pos, v_last);
  elsif v_tok ->> 0 = 'id' and v_tok ->> 1 = 'if' then
    select * into v_sub from bj.bs_expr(p_toks, bj.bs_expect(p_toks, p_pos + 1, '('), p_depth + 1);
    select * into v_then from bj.bs_statement(p_toks, bj.bs_expect(p_toks, v_sub.pos, ')'), p_depth + 1);
    -- (an empty statement as a branch is an empty block)
    node := jsonb_build_object('t', 'if', 'at', v_at, 'test', v_sub.node, 'then',
                               coalesce(v_then.node, jsonb_build_object('t', 'block', 'at', bj.bs_at(p_toks -> (v_then.pos - 1)), 'body', '[]'::jsonb)));
    pos := v_then.pos;
    if (p_toks -> pos ->> 0) = 'id' and (p_toks -> pos ->> 1) = 'else' then
      select * into v_sub from bj.bs_statement(p_toks, pos + 1, p_depth + 1);
      node := node || jsonb_build_object('else',
        coalesce(v_sub.node, jsonb_build_object('t', 'block', 'at', bj.bs_at(p_toks -> (v_sub.pos - 1)), 'body', '[]'::jsonb)));
      pos := v_sub.pos;
    end if;
  elsif v_tok ->> 0 = 'op' and v_tok ->> 1 = '{' then
    pos := p_pos + 1;
    while not ((p_toks -> pos ->> 0) = 'op' and (p_toks -> pos ->> 1) = '}') loop
      if p_toks -> pos ->> 0 = 'eof' then
        perform bj.bs_refuse('a block is not closed: `{`', v_at);
      end if;
      select * into v_sub from bj.bs_statement(p_toks, pos, p_depth + 1);
      if v_sub.node is not null then
        v_list := v_list || v_sub.node;
        if cardinality(v_list) > 1000 then
          perform bj.bs_refuse('the program is over 1000 nodes', v_sub.node -> 'at');
        end if;
      end if;
      pos := v_sub.pos;
    end loop;
    node := jsonb_build_object('t', 'block', 'at', v_at, 'body', to_jsonb(v_list));
    pos := pos + 1;
  elsif v_tok ->> 0 = 'id' and v_tok ->> 1 = 'return' then
    node := jsonb_build_object('t', 'return', 'at', v_at);
    v_sub := null;
    if not ((p_toks -> (p_pos + 1) ->> 0) = 'eof'
            or (p_toks -> (p_pos + 1) ->> 0) = 'op' and (p_toks -> (p_pos + 1) ->> 1) in (';', '}')
            or (p_toks -> (p_pos + 1) ->> 2)::int > (v_at ->> 0)::int) then
      perform bj.bs_refuse('return takes no value', bj.bs_at(p_toks -> (p_pos + 1)));
    end if;
    pos := bj.bs_end(p_toks, p_pos + 1, (v_at ->> 0)::int);
  elsif v_tok ->> 0 = 'op' and v_tok ->> 1 = ';' then
    node := null;  -- an empty statement
    pos := p_pos + 1;
  elsif v_tok ->> 0 = 'id' and v_tok ->> 1 in ('for', 'while', 'do', 'function', 'class', 'let', 'var',
                                                'switch', 'try', 'throw', 'break', 'continue', 'import',
                                                'export', 'with', 'else') then
    perform bj.bs_unexpected(v_tok);
  else
    select * into v_sub from bj.bs_expr(p_toks, p_pos, p_depth + 1);
    node := jsonb_build_object('t', 'expr', 'at', v_at, 'expr', v_sub.node);
    v_last := (p_toks -> (v_sub.pos - 1) ->> 2)::int;
    pos := bj.bs_end(p_toks, v_sub.pos, v_last);
  end if;
end $$;

create or replace function bj.bs_program(p_toks jsonb) returns jsonb
language plpgsql stable as $$
declare
  v_pos int := 0;
  v_list jsonb[] := '{}';
  v_sub record;
begin
  while p_toks -> v_pos ->> 0 <> 'eof' loop
    select * into v_sub from bj.bs_statement(p_toks, v_pos, 1);
    if v_sub.node is not null then
      v_list := v_list || v_sub.node;
      -- (each statement is a node at least: past 1000 the program is refused without reading on)
      if cardinality(v_list) > 1000 then
        perform bj.bs_refuse('the program is over 1000 nodes', v_sub.node -> 'at');
      end if;
    end if;
    v_pos := v_sub.pos;
  end loop;
  return jsonb_build_object('t', 'program', 'at', jsonb_build_array(1, 1), 'body', to_jsonb(v_list));
end $$;

---------------------------------------------------------------------------------------------
-- The auditor: names declared before use and once per block, built-ins called with their
-- arity, literals in range, markets and outcomes named by literals that exist, and the size.

-- Built-ins and actions: {name: [arity, is an action, the market's argument, the outcome's]}.
create or replace function bj.bs_builtins() returns jsonb
language sql immutable
return '{"price": [2, false, 1, 2], "position": [2, false, 1, 2], "balance": [0, false, null, null],
         "avg_price": [3, false, 1, 2], "volume": [2, false, 1, null], "now": [0, false, null, null],
         "min": [2, false, null, null], "max": [2, false, null, null], "abs": [1, false, null, null],
         "log": [1, false, null, null], "buy": [3, true, 1, 2], "buy_for": [3, true, 1, 2],
         "sell": [3, true, 1, 2], "limit": [5, true, 1, 2], "cancel_all": [1, true, 1, null]}'::jsonb;

-- Audit a node: p_scopes is the stack of blocks' names (an array of arrays, innermost last).
-- Answers the scopes after it (a const adds to the innermost), and counts nodes and actions.
drop function if exists bj.bs_audit(jsonb, jsonb, boolean, jsonb, int, int);
create or replace function bj.bs_audit(p_node jsonb, p_scopes jsonb, p_markets boolean,
                                       inout scopes jsonb, inout nodes int, inout actions int,
                                       p_level int default 1)
language plpgsql stable as $$
declare
  v_t text := p_node ->> 't';
  v_at jsonb := p_node -> 'at';
  v_child jsonb;
  v_spec jsonb;
  v_inner jsonb;
  v_market bj.markets;
  v_num numeric;
begin
  scopes := p_scopes;
  nodes := nodes + 1;
  if nodes > 1000 then
    perform bj.bs_refuse('the program is over 1000 nodes', v_at);
  end if;
  if p_level > 64 then
    perform bj.bs_refuse('nesting deeper than 64 levels', v_at);
  end if;
  if v_t = 'program' or v_t = 'block' then
    v_inner := case when v_t = 'block' then p_scopes || '[[]]'::jsonb else p_scopes end;
    for v_child in select e from jsonb_array_elements(p_node -> 'body') e loop
      select * into v_inner, nodes, actions from bj.bs_audit(v_child, v_inner, p_markets, v_inner, nodes, actions, p_level + 1);
    end loop;
  elsif v_t = 'const' then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'value', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    if bj.bs_builtins() ? (p_node ->> 'name') then
      perform bj.bs_refuse(format('`%s` is a built-in and cannot be declared', p_node ->> 'name'), v_at);
    end if;
    if (p_scopes -> -1) ? (p_node ->> 'name') then
      perform bj.bs_refuse(format('`%s` is already declared in this block', p_node ->> 'name'), v_at);
    end if;
    scopes := jsonb_set(p_scopes, '{-1}', (p_scopes -> -1) || to_jsonb(p_node ->> 'name'));
  elsif v_t = 'if' then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'test', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    select a.nodes, a.actions into nodes, actions
      from bj.bs_audit(p_node -> 'then', p_scopes || '[[]]'::jsonb, p_markets, scopes, nodes, actions, p_level + 1) a;
    if p_node ? 'else' then
      select a.nodes, a.actions into nodes, actions
        from bj.bs_audit(p_node -> 'else', p_scopes || '[[]]'::jsonb, p_markets, scopes, nodes, actions, p_level + 1) a;
    end if;
  elsif v_t = 'expr' then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'expr', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
  elsif v_t = 'name' then
    if not exists (select 1 from jsonb_array_elements(p_scopes) s where s ? (p_node ->> 'name')) then
      perform bj.bs_refuse(format('unknown name `%s`', p_node ->> 'name'), v_at);
    end if;
  elsif v_t = 'num' then
    v_num := (p_node ->> 'v')::numeric;
    if scale(v_num) > 18 or v_num >= 1e30 then
      perform bj.bs_refuse(format('the number %s is out of range (at most 18 decimals, below 1e30)', p_node ->> 'v'), v_at);
    end if;
  elsif v_t = 'call' then
    v_spec := bj.bs_builtins() -> (p_node ->> 'fn');
    if v_spec is null then
      perform bj.bs_refuse(format('calling anything but a built-in is not allowed: `%s`', p_node ->> 'fn'), v_at);
    end if;
    if jsonb_array_length(p_node -> 'args') <> (v_spec ->> 0)::int then
      perform bj.bs_refuse(format('`%s` takes %s argument%s', p_node ->> 'fn', v_spec ->> 0,
                                  case when (v_spec ->> 0)::int = 1 then '' else 's' end), v_at);
    end if;
    if (v_spec ->> 1)::boolean then
      actions := actions + 1;
      if actions > 10 then
        perform bj.bs_refuse('more than 10 actions', v_at);
      end if;
    end if;
    -- a market (and an outcome) named by a literal must exist
    if p_markets and v_spec ->> 2 is not null
       and p_node -> 'args' -> ((v_spec ->> 2)::int - 1) ->> 't' = 'str' then
      select * into v_market from bj.markets m where m.code = p_node -> 'args' -> ((v_spec ->> 2)::int - 1) ->> 'v';
      if not found then
        perform bj.bs_refuse(format('no market `%s`', p_node -> 'args' -> ((v_spec ->> 2)::int - 1) ->> 'v'),
                             p_node -> 'args' -> ((v_spec ->> 2)::int - 1) -> 'at');
      end if;
      if v_spec ->> 3 is not null and p_node -> 'args' -> ((v_spec ->> 3)::int - 1) ->> 't' = 'str'
         and not (p_node -> 'args' -> ((v_spec ->> 3)::int - 1) ->> 'v') = any (v_market.outcomes) then
        perform bj.bs_refuse(format('no outcome `%s` in market `%s`', p_node -> 'args' -> ((v_spec ->> 3)::int - 1) ->> 'v',
                                    v_market.code), p_node -> 'args' -> ((v_spec ->> 3)::int - 1) -> 'at');
      end if;
    end if;
    for v_child in select e from jsonb_array_elements(p_node -> 'args') e loop
      select a.nodes, a.actions into nodes, actions from bj.bs_audit(v_child, p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    end loop;
  elsif v_t = 'unary' then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'arg', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
  elsif v_t in ('binary', 'logical') then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'left', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'right', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
  elsif v_t = 'cond' then
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'test', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'then', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
    select a.nodes, a.actions into nodes, actions from bj.bs_audit(p_node -> 'else', p_scopes, p_markets, scopes, nodes, actions, p_level + 1) a;
  end if;
  if nodes > 1000 then
    perform bj.bs_refuse('the program is over 1000 nodes', v_at);
  end if;
end $$;

-- Parse and audit a program: its tree, or BJ040. p_markets: check that markets and outcomes
-- named by literals exist.
create or replace function bj.bot_parse(p_source text, p_markets boolean default true) returns jsonb
language plpgsql stable as $$
declare
  v_tree jsonb;
  v_audit record;
begin
  if p_source is null or octet_length(p_source) > 8192 then
    perform bj.raise('BJ040', 'the source is over 8 KB (8,192 bytes) at 1:1');
  end if;
  v_tree := bj.bs_program(bj.bs_tokens(p_source));
  select * into v_audit from bj.bs_audit(v_tree, '[[]]', p_markets, null, 0, 0);
  return v_tree;
end $$;

---------------------------------------------------------------------------------------------
-- The evaluator. A run's state is one jsonb: env (the blocks' names and values, innermost
-- last), inputs (every value a built-in read, by key), actions, logs, error (a message, or
-- null), done (a return ran), v (the value of the expression just evaluated). Values are jsonb
-- numbers, strings and booleans; numbers are exact decimals.

-- A value as text: a number as its shortest exact decimal, a boolean as true/false.
create or replace function bj.bs_text(p_v jsonb) returns text
language sql immutable
return case jsonb_typeof(p_v) when 'number' then trim_scale((p_v #>> '{}')::numeric)::text
                              else p_v #>> '{}' end;

create or replace function bj.bs_truthy(p_v jsonb) returns boolean
language sql immutable
return case jsonb_typeof(p_v) when 'boolean' then (p_v #>> '{}')::boolean
                              when 'number' then (p_v #>> '{}')::numeric <> 0
                              else (p_v #>> '{}') <> '' end;

create or replace function bj.bs_fail(p_st jsonb, p_what text, p_at jsonb) returns jsonb
language sql immutable
return p_st || jsonb_build_object('error', format('%s at %s:%s', p_what, p_at ->> 0, p_at ->> 1));

-- A number in range (below 1e30 in magnitude), as a value; or the run's error.
create or replace function bj.bs_num(p_st jsonb, p_x numeric, p_at jsonb) returns jsonb
language sql immutable
return case when abs(p_x) >= 1e30 then bj.bs_fail(p_st, 'number out of range', p_at)
            else p_st || jsonb_build_object('v', trim_scale(p_x)) end;

-- What a built-in reads, once per run: from the recorded inputs, else (a live run, p_user set)
-- from the exchange, recorded.
create or replace function bj.bs_read(p_st jsonb, p_fn text, p_args jsonb, p_at jsonb, p_user bigint)
returns jsonb
language plpgsql stable as $$
declare
  v_key text := p_fn || '(' || coalesce((select string_agg(bj.bs_text(a), ',' order by i)
                                         from jsonb_array_elements(p_args) with ordinality x(a, i)), '') || ')';
  v_market bj.markets;
  v_j int;
  v_minutes numeric;
  v_value jsonb;
  v_num numeric;
  v_since timestamptz;
begin
  -- the arguments' types, as the exchange would take them (checked whether or not the value
  -- was read before: a replay fails where the run failed)
  if p_fn in ('price', 'position', 'avg_price', 'volume') and jsonb_typeof(p_args -> 0) <> 'string'
     or p_fn in ('price', 'position', 'avg_price') and jsonb_typeof(p_args -> 1) <> 'string' then
    return bj.bs_fail(p_st, format('%s takes a market and an outcome as strings', p_fn), p_at);
  end if;
  if p_fn in ('avg_price', 'volume') then
    v_minutes := case when jsonb_typeof(p_args -> -1) = 'number' then (p_args ->> -1)::numeric end;
    if v_minutes is null or v_minutes <> trunc(v_minutes) or v_minutes not between 1 and 1440 then
      return bj.bs_fail(p_st, format('%s takes whole minutes from 1 to 1440', p_fn), p_at);
    end if;
  end if;
  if p_st -> 'inputs' ? v_key then
    return p_st || jsonb_build_object('v', p_st -> 'inputs' -> v_key);
  end if;
  if p_user is null then
    return bj.bs_fail(p_st, format('no input for %s', v_key), p_at);
  end if;
  if p_fn in ('price', 'position', 'avg_price', 'volume') then
    select * into v_market from bj.markets m where m.code = p_args ->> 0;
    if not found then
      return bj.bs_fail(p_st, format('no market `%s`', p_args ->> 0), p_at);
    end if;
    if p_fn <> 'volume' then
      v_j := array_position(v_market.outcomes, p_args ->> 1);
      if v_j is null then
        return bj.bs_fail(p_st, format('no outcome `%s` in market `%s`', p_args ->> 1, v_market.code), p_at);
      end if;
    end if;
  end if;
  -- (one statement per built-in: each keeps a plan of its own; a window's start is a value, so
  -- that the index on a market's trades by time finds its rows)
  v_since := clock_timestamp() - make_interval(mins => coalesce(v_minutes, 0)::int);
  if p_fn = 'price' then
    v_value := to_jsonb((bj.display_prices(bj.market_prices(v_market)))[v_j]);
  elsif p_fn = 'position' then
    select coalesce(max(p.shares), 0)::numeric into v_num from bj.positions p
     where p.user_id = p_user and p.market_id = v_market.id and p.outcome = v_j;
    v_value := to_jsonb(v_num);
  elsif p_fn = 'balance' then
    select u.balance::numeric into v_num from bj.users u where u.id = p_user;
    v_value := to_jsonb(v_num);
  elsif p_fn = 'avg_price' then
    select round(sum(coalesce(t.price * t.shares, t.amount)) / sum(t.shares), 9) into v_num from bj.trades t
     where t.market_id = v_market.id and t.created_at > v_since and t.outcome = v_j and t.role is distinct from 'maker';
    v_value := to_jsonb(coalesce(v_num, (bj.display_prices(bj.market_prices(v_market)))[v_j]));
  elsif p_fn = 'volume' then
    select coalesce(sum(t.amount), 0)::numeric into v_num from bj.trades t
     where t.market_id = v_market.id and t.created_at > v_since and t.role is distinct from 'maker';
    v_value := to_jsonb(v_num);
  else  -- now
    v_value := to_jsonb(floor(extract(epoch from clock_timestamp()))::bigint);
  end if;
  return p_st || jsonb_build_object('v', v_value, 'inputs', (p_st -> 'inputs') || jsonb_build_object(v_key, v_value));
end $$;

create or replace function bj.bs_call(p_node jsonb, p_st jsonb, p_user bigint) returns jsonb
language plpgsql stable as $$
declare
  v_fn text := p_node ->> 'fn';
  v_at jsonb := p_node -> 'at';
  v_st jsonb := p_st;
  v_args jsonb := '[]';
  v_arg jsonb;
  a numeric;
  b numeric;
begin
  for v_arg in select e from jsonb_array_elements(p_node -> 'args') e loop
    v_st := bj.bs_expr_eval(v_arg, v_st, p_user);
    if v_st ->> 'error' is not null then
      return v_st;
    end if;
    v_args := v_args || jsonb_build_array(v_st -> 'v');
  end loop;
  if v_fn in ('buy', 'buy_for', 'sell', 'limit', 'cancel_all') then
    return v_st || jsonb_build_object('v', true, 'actions',
                                      (v_st -> 'actions') || jsonb_build_array(jsonb_build_object('do', v_fn, 'args', v_args)));
  elsif v_fn = 'log' then
    if jsonb_array_length(v_st -> 'logs') >= 20 then
      return bj.bs_fail(v_st, 'more than 20 log lines', v_at);
    end if;
    return v_st || jsonb_build_object('v', true, 'logs',
                                      (v_st -> 'logs') || to_jsonb(left(bj.bs_text(v_args -> 0), 200)));
  elsif v_fn in ('min', 'max', 'abs') then
    if exists (select 1 from jsonb_array_elements(v_args) e where jsonb_typeof(e) <> 'number') then
      return bj.bs_fail(v_st, format('%s takes numbers', v_fn), v_at);
    end if;
    a := (v_args ->> 0)::numeric;
    b := (v_args ->> 1)::numeric;
    return bj.bs_num(v_st, case v_fn when 'min' then least(a, b) when 'max' then greatest(a, b) else abs(a) end, v_at);
  else
    return bj.bs_read(v_st, v_fn, v_args, v_at, p_user);
  end if;
end $$;

create or replace function bj.bs_expr_eval(p_node jsonb, p_st jsonb, p_user bigint) returns jsonb
language plpgsql stable as $$
declare
  v_t text := p_node ->> 't';
  v_at jsonb := p_node -> 'at';
  v_op text := p_node ->> 'op';
  v_st jsonb;
  l jsonb;
  r jsonb;
  a numeric;
  b numeric;
  v_scope jsonb;
begin
  if v_t = 'num' then
    return p_st || jsonb_build_object('v', (p_node ->> 'v')::numeric);
  elsif v_t = 'str' or v_t = 'bool' then
    return p_st || jsonb_build_object('v', p_node -> 'v');
  elsif v_t = 'name' then
    for v_scope in select e from jsonb_array_elements(p_st -> 'env') with ordinality x(e, i) order by i desc loop
      if v_scope ? (p_node ->> 'name') then
        return p_st || jsonb_build_object('v', v_scope -> (p_node ->> 'name'));
      end if;
    end loop;
    return bj.bs_fail(p_st, format('unknown name `%s`', p_node ->> 'name'), v_at);
  elsif v_t = 'call' then
    return bj.bs_call(p_node, p_st, p_user);
  elsif v_t = 'cond' then
    v_st := bj.bs_expr_eval(p_node -> 'test', p_st, p_user);
    if v_st ->> 'error' is not null then return v_st; end if;
    return bj.bs_expr_eval(case when bj.bs_truthy(v_st -> 'v') then p_node -> 'then' else p_node -> 'else' end,
                           v_st, p_user);
  elsif v_t = 'logical' then
    v_st := bj.bs_expr_eval(p_node -> 'left', p_st, p_user);
    if v_st ->> 'error' is not null then return v_st; end if;
    if bj.bs_truthy(v_st -> 'v') = (v_op = '||') then
      return v_st;  -- a || b: a when a is true; a && b: a when a is false
    end if;
    return bj.bs_expr_eval(p_node -> 'right', v_st, p_user);
  elsif v_t = 'unary' then
    v_st := bj.bs_expr_eval(p_node -> 'arg', p_st, p_user);
    if v_st ->> 'error' is not null then return v_st; end if;
    if v_op = '!' then
      return v_st || jsonb_build_object('v', not bj.bs_truthy(v_st -> 'v'));
    elsif jsonb_typeof(v_st -> 'v') <> 'number' then
      return bj.bs_fail(v_st, format('`-` takes a number, not %s', bj.bs_text(v_st -> 'v')), v_at);
    end if;
    return bj.bs_num(v_st, -(v_st ->> 'v')::numeric, v_at);
  end if;
  -- binary
  v_st := bj.bs_expr_eval(p_node -> 'left', p_st, p_user);
  if v_st ->> 'error' is not null then return v_st; end if;
  l := v_st -> 'v';
  v_st := bj.bs_expr_eval(p_node -> 'right', v_st, p_user);
  if v_st ->> 'error' is not null then return v_st; end if;
  r := v_st -> 'v';
  if v_op in ('===', '!==') then
    return v_st || jsonb_build_object('v', (jsonb_typeof(l) = jsonb_typeof(r) and case jsonb_typeof(l)
        when 'number' then (l #>> '{}')::numeric = (r #>> '{}')::numeric else l = r end) = (v_op = '==='));
  end if;
  if v_op = '+' and (jsonb_typeof(l) = 'string' or jsonb_typeof(r) = 'string') then
    return v_st || jsonb_build_object('v', bj.bs_text(l) || bj.bs_text(r));
  end if;
  if v_op in ('<', '<=', '>', '>=') and jsonb_typeof(l) = 'string' and jsonb_typeof(r) = 'string' then
    return v_st || jsonb_build_object('v', case v_op
      when '<' then (l #>> '{}') collate "C" < (r #>> '{}') collate "C"
      when '<=' then (l #>> '{}') collate "C" <= (r #>> '{}') collate "C"
      when '>' then (l #>> '{}') collate "C" > (r #>> '{}') collate "C"
      else (l #>> '{}') collate "C" >= (r #>> '{}') collate "C" end);
  end if;
  if jsonb_typeof(l) <> 'number' or jsonb_typeof(r) <> 'number' then
    return bj.bs_fail(v_st, format('`%s` cannot take %s and %s', v_op, jsonb_typeof(l), jsonb_typeof(r)), v_at);
  end if;
  a := (l #>> '{}')::numeric;
  b := (r #>> '{}')::numeric;
  case v_op
    when '<' then return v_st || jsonb_build_object('v', a < b);
    when '<=' then return v_st || jsonb_build_object('v', a <= b);
    when '>' then return v_st || jsonb_build_object('v', a > b);
    when '>=' then return v_st || jsonb_build_object('v', a >= b);
    when '+' then return bj.bs_num(v_st, a + b, v_at);
    when '-' then return bj.bs_num(v_st, a - b, v_at);
    when '*' then return bj.bs_num(v_st, round(a * b, 18), v_at);
    else
      if b = 0 then
        return bj.bs_fail(v_st, 'division by zero', v_at);
      end if;
      -- (the factor gives the quotient 60 decimals before it is rounded to 18)
      return bj.bs_num(v_st, round(a * 1.000000000000000000000000000000000000000000000000000000000000 / b, 18), v_at);
  end case;
end $$;

create or replace function bj.bs_stmt_eval(p_node jsonb, p_st jsonb, p_user bigint) returns jsonb
language plpgsql stable as $$
declare
  v_t text := p_node ->> 't';
  v_st jsonb := p_st;
  v_child jsonb;
begin
  if v_t in ('program', 'block') then
    if v_t = 'block' then
      v_st := jsonb_set(v_st, '{env}', (v_st -> 'env') || '[{}]'::jsonb);
    end if;
    for v_child in select e from jsonb_array_elements(p_node -> 'body') e loop
      v_st := bj.bs_stmt_eval(v_child, v_st, p_user);
      exit when v_st ->> 'error' is not null or (v_st ->> 'done')::boolean;
    end loop;
    if v_t = 'block' then
      v_st := jsonb_set(v_st, '{env}', (v_st -> 'env') - (-1));
    end if;
    return v_st;
  elsif v_t = 'const' then
    v_st := bj.bs_expr_eval(p_node -> 'value', v_st, p_user);
    if v_st ->> 'error' is not null then return v_st; end if;
    return jsonb_set(v_st, '{env,-1}', (v_st -> 'env' -> -1) || jsonb_build_object(p_node ->> 'name', v_st -> 'v'));
  elsif v_t = 'if' then
    v_st := bj.bs_expr_eval(p_node -> 'test', v_st, p_user);
    if v_st ->> 'error' is not null then return v_st; end if;
    v_child := case when bj.bs_truthy(v_st -> 'v') then p_node -> 'then' else p_node -> 'else' end;
    if v_child is null then
      return v_st;
    end if;
    -- a branch is a block of its own
    v_st := jsonb_set(v_st, '{env}', (v_st -> 'env') || '[{}]'::jsonb);
    v_st := bj.bs_stmt_eval(v_child, v_st, p_user);
    return jsonb_set(v_st, '{env}', (v_st -> 'env') - (-1));
  elsif v_t = 'return' then
    return v_st || '{"done": true}';
  else
    return bj.bs_expr_eval(p_node -> 'expr', v_st, p_user);
  end if;
end $$;

-- Evaluate a program's tree against inputs: {actions, logs, error, inputs}. With p_user (a
-- live run of that bot's account), what the inputs lack is read from the exchange and
-- recorded; without, it is an error. An error keeps the log so far and drops every action.
create or replace function bj.bot_eval(p_tree jsonb, p_inputs jsonb, p_user bigint default null)
returns jsonb
language plpgsql stable as $$
declare
  v_st jsonb;
begin
  v_st := bj.bs_stmt_eval(p_tree, jsonb_build_object('env', '[{}]'::jsonb, 'inputs', coalesce(p_inputs, '{}'),
                                                     'actions', '[]'::jsonb, 'logs', '[]'::jsonb,
                                                     'error', null, 'done', false), p_user);
  return jsonb_build_object('actions', case when v_st ->> 'error' is null then v_st -> 'actions' else '[]' end,
                            'logs', v_st -> 'logs', 'error', v_st -> 'error', 'inputs', v_st -> 'inputs');
end $$;

---------------------------------------------------------------------------------------------
-- Bots

-- A bot of its owner's, by its name (its account's username), locked; another trader's bot
-- is unknown, as a missing one is.
create or replace function bj.bot_of(p_owner bigint, p_bot text) returns bj.bots
language plpgsql as $$
declare
  v_bot bj.bots;
begin
  select b.* into v_bot from bj.bots b join bj.users u on u.id = b.user_id
   where u.username = lower(p_bot) and b.owner_id = p_owner and b.status <> 'deleted'
     for no key update of b;
  if not found then
    perform bj.raise('BJ041', p_bot);
  end if;
  return v_bot;
end $$;

-- Market codes to ids: 1 to 20 markets that exist.
create or replace function bj.bot_market_ids(p_markets text[]) returns bigint[]
language plpgsql stable as $$
declare
  v_ids bigint[];
  v_code text;
begin
  if coalesce(cardinality(p_markets), 0) not between 1 and 20 then
    perform bj.raise('BJ021', 'a bot watches 1 to 20 markets');
  end if;
  foreach v_code in array p_markets loop
    if not exists (select 1 from bj.markets m where m.code = v_code) then
      perform bj.raise('BJ010', v_code);
    end if;
  end loop;
  select array_agg(distinct m.id) into v_ids from bj.markets m where m.code = any (p_markets);
  return v_ids;
end $$;

-- What the bot watches: these markets, each as of its version now (it runs at the next change).
create or replace function bj.bot_watch(p_bot bigint, p_markets bigint[]) returns void
language plpgsql as $$
begin
  delete from bj.bot_markets bm where bm.bot_id = p_bot and not bm.market_id = any (p_markets);
  insert into bj.bot_markets (bot_id, market_id, seen_version)
  select p_bot, m.id, m.version from bj.markets m where m.id = any (p_markets)
  on conflict (bot_id, market_id) do nothing;
end $$;

-- A bot as its owner sees it.
create or replace function bj.bot_json(p_bot bj.bots) returns jsonb
language sql stable
begin atomic
  select jsonb_build_object('bot', u.username, 'status', p_bot.status,
           'source', (select p.source from bj.bot_programs p where p.id = p_bot.program_id),
           'markets', (select jsonb_agg(m.code order by m.code) from bj.bot_markets bm
                         join bj.markets m on m.id = bm.market_id where bm.bot_id = p_bot.id),
           'cooldown_ms', greatest(p_bot.cooldown_ms, bj.setting('bot_cooldown_ms')::int),
           'balance', u.balance, 'runs', p_bot.runs, 'last_run_at', p_bot.last_run_at,
           'created_at', p_bot.created_at)
    from bj.users u where u.id = p_bot.user_id;
end;

-- A new program for a bot (its source and audited tree), now its current one.
create or replace function bj.bot_program(p_bot bj.bots, p_source text, p_tree jsonb) returns bj.bots
language plpgsql as $$
declare
  v_program bigint;
  v_bot bj.bots;
begin
  insert into bj.bot_programs (bot_id, source, tree) values (p_bot.id, p_source, p_tree) returning id into v_program;
  update bj.bots b set program_id = v_program, updated_at = clock_timestamp() where b.id = p_bot.id
  returning * into v_bot;
  return v_bot;
end $$;

create or replace function bj.create_bot(p_owner bigint, p_name text, p_source text, p_markets text[],
                                         p_cooldown_ms int default null) returns jsonb
language plpgsql as $$
declare
  v_name text := lower(p_name);
  v_ids bigint[] := bj.bot_market_ids(p_markets);
  v_tree jsonb := bj.bot_parse(p_source);
  v_user bj.users;
  v_bot bj.bots;
begin
  perform 1 from bj.users u where u.id = p_owner and not u.is_bot for no key update;
  if not found then
    perform bj.raise('BJ021', 'a bot cannot own a bot');
  end if;
  if v_name is null or not bj.is_username(v_name) or v_name like '\_%' then
    perform bj.raise('BJ024', 'a bot is named as a username is: 3 to 32 of a-z, 0-9 and _');
  end if;
  if p_cooldown_ms is not null and p_cooldown_ms not between 0 and 86400000 then
    perform bj.raise('BJ021', 'cooldown_ms must lie between 0 and 86400000');
  end if;
  if (select count(*) from bj.bots b where b.owner_id = p_owner and b.status <> 'deleted')
     >= bj.setting('bots_per_owner')::int then
    perform bj.raise('BJ021', format('at most %s bots each', bj.setting('bots_per_owner')));
  end if;
  begin
    insert into bj.users (username, balance, is_bot, owner_id) values (v_name, 0, true, p_owner)
    returning * into v_user;
  exception when unique_violation then
    perform bj.raise('BJ009', v_name);
  end;
  insert into bj.bots (user_id, owner_id, cooldown_ms)
  values (v_user.id, p_owner, coalesce(p_cooldown_ms, 0)) returning * into v_bot;
  v_bot := bj.bot_program(v_bot, p_source, v_tree);
  perform bj.bot_watch(v_bot.id, v_ids);
  return bj.bot_json(v_bot);
end $$;

create or replace function bj.update_bot(p_owner bigint, p_bot text, p_source text, p_markets text[],
                                         p_cooldown_ms int) returns jsonb
language plpgsql as $$
declare
  v_bot bj.bots := bj.bot_of(p_owner, p_bot);
begin
  if p_cooldown_ms is not null and p_cooldown_ms not between 0 and 86400000 then
    perform bj.raise('BJ021', 'cooldown_ms must lie between 0 and 86400000');
  end if;
  if p_markets is not null then
    perform bj.bot_watch(v_bot.id, bj.bot_market_ids(p_markets));
  end if;
  if p_source is not null then
    v_bot := bj.bot_program(v_bot, p_source, bj.bot_parse(p_source));
  end if;
  update bj.bots b set cooldown_ms = coalesce(p_cooldown_ms, b.cooldown_ms), updated_at = clock_timestamp()
   where b.id = v_bot.id returning * into v_bot;
  return bj.bot_json(v_bot);
end $$;

create or replace function bj.set_bot_status(p_owner bigint, p_bot text, p_status text) returns jsonb
language plpgsql as $$
declare
  v_bot bj.bots := bj.bot_of(p_owner, p_bot);
  v_cash numeric;
  v_journal bigint;
begin
  if p_status = 'deleted' then
    -- its orders are cancelled, its cash goes back to its owner; its positions stay with its
    -- account until their markets settle
    perform bj.cancel_orders(v_bot.user_id, null, null);
    perform 1 from bj.users u where u.id in (v_bot.owner_id, v_bot.user_id) order by u.id for no key update;
    select u.balance into v_cash from bj.users u where u.id = v_bot.user_id;
    v_journal := nextval('bj.journal_seq');
    perform bj.post(v_journal, 'transfer', 'coin', bj.cash_account(v_bot.user_id), bj.cash_account(v_bot.owner_id),
                    v_cash, v_bot.user_id);
    update bj.users u set balance = u.balance + case when u.id = v_bot.owner_id then v_cash else -v_cash end
     where u.id in (v_bot.owner_id, v_bot.user_id);
  end if;
  update bj.bots b set status = p_status, updated_at = clock_timestamp() where b.id = v_bot.id
  returning * into v_bot;
  return bj.bot_json(v_bot);
end $$;

-- Coins between an owner and their bot, as a ledger posting: p_amount > 0 funds the bot,
-- < 0 takes coins back.
create or replace function bj.fund_bot(p_owner bigint, p_bot text, p_amount numeric) returns jsonb
language plpgsql as $$
declare
  v_bot bj.bots := bj.bot_of(p_owner, p_bot);
  v_from bigint;
  v_to bigint;
  v_amount numeric := abs(p_amount);
  v_available numeric;
begin
  if p_amount is null or p_amount = 0 or abs(p_amount) > 1e12 or p_amount <> round(p_amount, 6) then
    perform bj.raise('BJ020', 'amount must be non-zero, at most 1e12, with at most 6 decimals');
  end if;
  if p_amount > 0 then
    v_from := p_owner; v_to := v_bot.user_id;
  else
    v_from := v_bot.user_id; v_to := p_owner;
  end if;
  perform 1 from bj.users u where u.id in (p_owner, v_bot.user_id) order by u.id for no key update;
  select u.balance into v_available from bj.users u where u.id = v_from;
  if v_available < v_amount then
    perform bj.raise('BJ001', format('needs %s, available %s', v_amount, v_available));
  end if;
  -- (a transfer is posted under the bot's id: analytics.paid_in finds it there)
  perform bj.post(nextval('bj.journal_seq'), 'transfer', 'coin', bj.cash_account(v_from), bj.cash_account(v_to),
                  v_amount, v_bot.user_id);
  update bj.users u set balance = u.balance + case when u.id = v_to then v_amount else -v_amount end
   where u.id in (v_from, v_to);
  select * into v_bot from bj.bots b where b.id = v_bot.id;
  return bj.bot_json(v_bot);
end $$;

create or replace function bj.bot_runs(p_owner bigint, p_bot text, p_max_rows int) returns jsonb
language plpgsql stable as $$
declare
  v_bot bigint;
begin
  if p_max_rows is null or p_max_rows not between 1 and 500 then
    perform bj.raise('BJ021', 'max_rows must lie between 1 and 500');
  end if;
  select b.id into v_bot from bj.bots b join bj.users u on u.id = b.user_id
   where u.username = lower(p_bot) and b.owner_id = p_owner;
  if not found then
    perform bj.raise('BJ041', p_bot);
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('run_id', r.id, 'at', r.at, 'market', m.code, 'version', r.market_version,
                                        'inputs', r.inputs, 'actions', r.actions, 'logs', r.logs,
                                        'error', r.error, 'took_us', r.took_us) order by r.id desc)
      from (select * from bj.bot_runs r where r.bot_id = v_bot order by r.id desc limit p_max_rows) r
      left join bj.markets m on m.id = r.market_id), '[]');
end $$;

---------------------------------------------------------------------------------------------
-- Runs

-- Perform one action of a run as the bot's account, through the exchange's own path; its
-- result, or its error (a refused action never stops the others).
create or replace function bj.bot_act(p_user bigint, p_action jsonb) returns jsonb
language plpgsql as $$
declare
  a jsonb := p_action -> 'args';
  v_result jsonb;
  v_code text;
  v_message text;
  v_detail text;
begin
  begin
    v_result := case p_action ->> 'do'
      when 'buy' then bj.execute_trade(p_user, a ->> 0, a ->> 1, 'buy', (a ->> 2)::numeric, null,
                                       p_cascade => true, p_cooldown => false)
      when 'sell' then bj.execute_trade(p_user, a ->> 0, a ->> 1, 'sell', (a ->> 2)::numeric, null,
                                        p_cascade => true, p_cooldown => false)
      when 'buy_for' then bj.execute_trade(p_user, a ->> 0, a ->> 1, 'buy', null, (a ->> 2)::numeric,
                                           p_cascade => true, p_cooldown => false)
      when 'limit' then bj.place_order(p_user, a ->> 0, a ->> 1, a ->> 2, 'limit', (a ->> 4)::numeric,
                                       (a ->> 3)::numeric, null, null, 'gtc', null, false, 'persist', null,
                                       'cancel_resting', null, null, null)
      when 'cancel_all' then bj.cancel_orders(p_user, a ->> 0, null)
    end;
    return p_action || jsonb_build_object('result', v_result);
  exception when others then
    get stacked diagnostics v_code = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
    if v_code like '40%' or v_code like '53%' or v_code like '57%' or v_code like '08%' then
      raise;  -- not the action's fault
    end if;
    return p_action || jsonb_build_object('error', jsonb_build_object('code', v_code, 'message', v_message,
                                                                       'details', nullif(v_detail, '')));
  end;
end $$;

-- Run the bot that has waited longest among those due (a market it watches changed since its
-- last run, its cooldown has passed), once: evaluate its program against the state now, then
-- perform its actions, and record the run. The pick, the cooldown's check and its setting are
-- one statement on the bot's row (SKIP LOCKED: two runners never run one bot at once). Answers
-- the run's id, or null when no bot is due. The server calls it in a loop, one transaction a
-- run, so a person's trade waits at most for one run's actions (at most 10).
create or replace function admin.run_bot() returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  v_started timestamptz := clock_timestamp();
  v_floor numeric := bj.setting('bot_cooldown_ms')::numeric;
  v_bot bj.bots;
  v_market bigint;
  v_version bigint;
  v_eval jsonb;
  v_actions jsonb := '[]';
  v_action jsonb;
  v_run bigint;
  v_most int;
  v_queue bigint;
begin
  update bj.bots b set last_run_at = v_started, runs = b.runs + 1
   where b.id = (select b2.id from bj.bots b2
                  where b2.status = 'active'
                    and (b2.last_run_at is null
                         or b2.last_run_at <= v_started - make_interval(secs => greatest(b2.cooldown_ms, v_floor) / 1000))
                    and exists (select 1 from bj.bot_markets bm join bj.markets m on m.id = bm.market_id
                                 where bm.bot_id = b2.id and m.version > bm.seen_version)
                  order by b2.last_run_at nulls first, b2.id
                  limit 1 for no key update skip locked)
  returning * into v_bot;
  if not found then
    return null;
  end if;
  -- the change it runs for: the most recent of its markets'; it sees every one as it is now
  select bm.market_id, m.version into v_market, v_version
    from bj.bot_markets bm join bj.markets m on m.id = bm.market_id
   where bm.bot_id = v_bot.id and m.version > bm.seen_version
   order by m.version - bm.seen_version desc, m.id limit 1;
  update bj.bot_markets bm set seen_version = m.version
    from bj.markets m where m.id = bm.market_id and bm.bot_id = v_bot.id;
  v_eval := bj.bot_eval((select p.tree from bj.bot_programs p where p.id = v_bot.program_id), '{}', v_bot.user_id);
  if v_eval ->> 'error' is null then
    -- the queues of the markets its actions name, taken in id order before the first action
    -- locks anything of the bot's: a person's trade that holds one of them and fills this bot's
    -- resting order then never waits for a run that waits for it (architecture.md §16)
    for v_queue in select m.id from bj.markets m
                    where m.code in (select e -> 'args' ->> 0 from jsonb_array_elements(v_eval -> 'actions') e)
                    order by m.id loop
      perform bj.queue_market(v_queue);
    end loop;
    -- a person's trade waits for at most max_cascade bot actions (a run holds what it locks)
    v_most := least(10, bj.setting('max_cascade')::int);
    for v_action in select e from jsonb_array_elements(v_eval -> 'actions') e loop
      if jsonb_array_length(v_actions) >= v_most then
        v_action := v_action || jsonb_build_object('error', jsonb_build_object('code', 'BJ021',
                      'message', format('not performed: a run performs at most %s actions (max_cascade)', v_most)));
      else
        v_action := bj.bot_act(v_bot.user_id, v_action);
      end if;
      v_actions := v_actions || jsonb_build_array(v_action);
    end loop;
    -- its own actions do not wake it: the markets they changed are seen as they are now (their
    -- rows stay locked by this run, so nobody else's change hides in that)
    update bj.bot_markets bm set seen_version = m.version
      from bj.markets m
     where m.id = bm.market_id and bm.bot_id = v_bot.id
       and m.code in (select a -> 'args' ->> 0 from jsonb_array_elements(v_actions) a where a ? 'result');
  end if;
  insert into bj.bot_runs (bot_id, program_id, at, market_id, market_version, inputs, actions, logs, error, took_us)
  values (v_bot.id, v_bot.program_id, v_started, v_market, v_version, v_eval -> 'inputs', v_actions, v_eval -> 'logs',
          v_eval ->> 'error', (extract(epoch from clock_timestamp() - v_started) * 1000000)::int)
  returning id into v_run;
  return v_run;
end $$;
grant execute on function admin.run_bot() to service_role, authenticator;

-- Evaluate a recorded run again from its inputs: the same actions (without their results) and
-- log, or the same error.
create or replace function admin.replay_bot_run(run_id bigint) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  v_run bj.bot_runs;
  v_eval jsonb;
begin
  select * into v_run from bj.bot_runs r where r.id = replay_bot_run.run_id;
  if not found then
    perform bj.raise('BJ021', 'no such run');
  end if;
  v_eval := bj.bot_eval((select p.tree from bj.bot_programs p where p.id = v_run.program_id), v_run.inputs);
  return jsonb_build_object(
    'same', v_eval -> 'actions' = (select coalesce(jsonb_agg(a - 'result' - 'error' order by i), '[]')
                                     from jsonb_array_elements(v_run.actions) with ordinality x(a, i))
            and v_eval -> 'logs' = v_run.logs and (v_eval ->> 'error') is not distinct from v_run.error,
    'actions', v_eval -> 'actions', 'logs', v_eval -> 'logs', 'error', v_eval -> 'error');
end $$;
grant execute on function admin.replay_bot_run(bigint) to service_role;
