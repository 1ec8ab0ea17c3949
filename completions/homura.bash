# homura.bash - bash completion for homura: subcommands, each subcommand's
# options (the lists match `homura CMD --help`; tests/integration/
# test_install.py checks that), formats, sort columns, and the PIDs of
# Python processes after -p/--pid. Installed as
# $(PREFIX)/share/bash-completion/completions/homura; needs no other package.

_homura_python_pids()
{
	local d comm
	for d in /proc/[0-9]*; do
		read -r comm < "$d/comm" 2>/dev/null || continue
		case $comm in
		python*|uwsgi*|gunicorn*) printf '%s\n' "${d#/proc/}" ;;
		esac
	done
}

_homura_options()
{
	case $1 in
	record) echo "-p --pid -o --output -f --format -r --rate -d --duration -i --idle
		-g --gil -t --threads -s --subprocesses -n --native --async --ebpf --kernel --no-trace --group-by --nolineno --function
		--full-filenames --blocking --nonblocking --no-jitter --max-depth --stats-json
		--title --focus --hide --thread --drop-file -h --help" ;;
	run) echo "--cpu --memory --gpu -o --output --json --heap --profile-all -r --rate -p --pid
		-d --duration -n --lines -h --help" ;;
	top) echo "-p --pid -r --rate -i --idle -g --gil -l --lines -S --sort -n --native
		-s --subprocesses --no-jitter --no-trace --max-depth --iterations --once --rows
		--full-filenames --nonblocking -h --help" ;;
	dump) echo "-p --pid -l --locals -j --json -n --native --async --no-trace --full-filenames
		--nonblocking -h --help" ;;
	convert) echo "-o --output -f --format --title --width --focus --hide --thread
		--drop-file --group-by -h --help" ;;
	diff) echo "-o --output -f --format --title --width --focus --hide --thread
		--drop-file -h --help" ;;
	agent) echo "-p --pid --name --all --scan-interval -r --rate --interval --idle --ebpf --kernel
		--nolineno --no-trace --max-depth --service --label --otlp --server --pyroscope --dir
		--dir-format --dir-max-size --queue-max-bytes --spool --spool-max-bytes
		--timeout --backoff-max --max-attempts --max-age --flush-timeout --header --token --config
		--stats-interval --stats-json -h --help" ;;
	server) echo "-d --data -l --listen --ingest-token --read-token --ingest-token-file
		--read-token-file --max-connections --max-connections-per-ip --idle-timeout
		--retention
		--downsample-after --max-size --max-body --max-series --threads -q --quiet
		-h --help" ;;
	esac
}

_homura()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmds="record run top dump convert diff agent server help"
	local i cmd=${COMP_WORDS[1]}
	COMPREPLY=()
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W "$cmds -h --help -V --version" -- "$cur"))
		return 0
	fi
	if [[ $cmd == help ]]; then
		((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W "${cmds% help}" -- "$cur"))
		return 0
	fi
	# After `--` (record, run, top): the command to launch, then its arguments.
	for ((i = 2; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == -- ]]; then
			if ((i == COMP_CWORD - 1)); then
				COMPREPLY=($(compgen -c -- "$cur"))
			else
				COMPREPLY=($(compgen -f -- "$cur"))
			fi
			return 0
		fi
	done
	case $cmd:$prev in
	*:-p | *:--pid)
		COMPREPLY=($(compgen -W "$(_homura_python_pids)" -- "$cur"))
		return 0 ;;
	record:-f | record:--format | convert:-f | convert:--format)
		COMPREPLY=($(compgen -W "collapsed raw folded speedscope svg flamegraph pprof otlp
			otlp-json chrometrace" -- "$cur"))
		return 0 ;;
	diff:-f | diff:--format)
		COMPREPLY=($(compgen -W "svg collapsed pprof" -- "$cur"))
		return 0 ;;
	agent:--dir-format)
		COMPREPLY=($(compgen -W "pprof otlp otlp-json collapsed speedscope" -- "$cur"))
		return 0 ;;
	top:-S | top:--sort)
		COMPREPLY=($(compgen -W "own total owntime totaltime" -- "$cur"))
		return 0 ;;
	*:-o | *:--output | *:--stats-json | run:--json | *:--config | *:--*-token-file)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0 ;;
	*:--dir | *:--spool | server:-d | server:--data)
		COMPREPLY=($(compgen -d -- "$cur"))
		return 0 ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_homura_options "$cmd")" -- "$cur"))
		return 0
	fi
	case $cmd in
	convert | diff) COMPREPLY=($(compgen -f -- "$cur")) ;;
	esac
	return 0
}

complete -F _homura homura
